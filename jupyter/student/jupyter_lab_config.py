"""JupyterLab settings of `make lab` (JUPYTER_CONFIG_PATH=jupyter/student): defaults for the course,
not the user's own settings, which still apply on top of them.

lab-settings/overrides.json: no "Would you like to get notified about official Jupyter news?" pop-up
and no update check (both would fetch from the internet, and they distract from the notebook).
"""

from pathlib import Path

c.LabApp.app_settings_dir = str(Path(__file__).resolve().parent / "lab-settings")  # noqa: F821 (c: the config)
