"""`make lab` asks this first: is a Jupyter server already serving this folder? If so, say where, and
exit 1 (make then starts no second one). Exit 0 when none is running."""

import os
import sys

from jupyter_server.serverapp import list_running_servers

root = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else os.getcwd())
for info in list_running_servers():
    if os.path.realpath(info.get("root_dir") or info.get("notebook_dir") or "") != root:
        continue
    url = info["url"].rstrip("/") + "/lab" + (f"?token={info['token']}" if info.get("token") else "")
    print(f"JupyterLab is already running for this course (pid {info.get('pid')}, port {info.get('port')}):\n"
          f"    {url}\n"
          f"Open that address, or stop that server first: .venv/bin/jupyter server stop {info.get('port')}")
    sys.exit(1)
