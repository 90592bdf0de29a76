# Two commands: `make lab` opens the course, `make test` runs every test.
# Both create .venv on first use and reinstall only when the pins change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
IP     ?= 127.0.0.1
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup venv-ok lab formgrader test nbval solutions-outputs bench release validate student-copy need-solutions clean

setup: venv-ok $(STAMP)

# A .venv whose Python no longer runs (moved folder, upgraded or removed system Python) would fail
# later with "/bin/sh: .venv/bin/python: not found": say so now, and how to rebuild it.
venv-ok:
	@if [ -e $(VENV) ] && ! $(PY) -c "" >/dev/null 2>&1; then \
		echo "The virtual environment $(VENV) is broken: $(PY) does not run (its Python was moved,"; \
		echo "upgraded or removed). Rebuild it: make clean, then your command again (it takes a few minutes)."; \
		exit 2; fi

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

# --no-browser and --allow-root make it work on a headless machine and in a container;
# IP=0.0.0.0 serves it to other machines.
# One BLAS thread per kernel (unless you set one): the notebooks' matrices are small, and extra threads
# cost more than they save.
# jupyter/student/ hides nbgrader's Lab extensions (menus, Validate button, assignment list and
# formgrader pages that need an nbgrader exchange): students use `python -m grader check`.
# A second `make lab` in the same folder says where the first one runs instead of starting another.
lab: setup
	@$(PY) jupyter/already_running.py "$(CURDIR)" || exit 0; \
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/student" \
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} \
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=$(IP) --port=$(PORT) \
		--ServerApp.root_dir="$(CURDIR)"

# Hand-grading for instructors: nbgrader's formgrader on the grading workspace that
# `python -m grader autograde SUBMISSIONS --out $(GRADING)` wrote (gradebook.db, autograded/).
# Scores entered there appear in `python -m grader export --gradebook $(GRADING) ...` and in the total.
GRADING ?= grading
formgrader: need-solutions setup
	@test -f "$(GRADING)/gradebook.db" || { echo "no gradebook at $(GRADING)/gradebook.db: run"; \
		echo "  $(PY) -m grader autograde SUBMISSIONS --out $(GRADING)   first (or make formgrader GRADING=DIR)"; exit 2; }
	@$(PY) jupyter/already_running.py "$(abspath $(GRADING))" || exit 0; \
	GRADER_WORKSPACE="$(abspath $(GRADING))" GRADER_COURSE="$(CURDIR)" \
	JUPYTER_CONFIG_PATH="$(CURDIR)/jupyter/formgrader" \
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=$(IP) --port=$(PORT) \
		--ServerApp.root_dir="$(abspath $(GRADING))" --ServerApp.default_url=/formgrader

# Two test processes on two cores: one BLAS thread each, or they oversubscribe the machine.
test: setup
	MPLBACKEND=Agg OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

# nbval on the solution notebooks (make test runs it too, in tests/test_nbval.py): the cells marked
# tagged `nbval-check-output` must print what is committed in solutions/ (after tests/nbval_sanitize.cfg).
# One notebook per kernel (--dist loadscope); NOTEBOOKS="01_activations ..." for some of them.
# Plots inline, as in Lab and in the committed outputs (make test's Agg would drop them).
NOTEBOOKS ?=
NBVAL_ENV := MPLBACKEND=module://matplotlib_inline.backend_inline OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
	MKL_NUM_THREADS=1 PYTHONHASHSEED=0
nbval: need-solutions setup
	$(NBVAL_ENV) $(PY) -m pytest -n 2 --dist loadscope -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with=tests/nbval_sanitize.cfg \
		$(if $(NOTEBOOKS),$(addprefix solutions/,$(NOTEBOOKS)),solutions)

# Rerun solution notebooks and commit their outputs: after a change to a solution or to nnlab that moves
# a printed number (update the prose with it), and for a new notebook (which nbval skips until then).
solutions-outputs: need-solutions setup
	$(PY) tests/solution_outputs.py $(NOTEBOOKS)

bench: setup
	$(PY) -m nnlab.bench

release: need-solutions setup
	$(PY) -m grader release

validate: need-solutions setup
	$(PY) -m grader validate

# What students of a graded class get: the committed course without solutions/ (they hold the hidden
# tests), with STUDENTS.md as its README, as a git repository with one commit, ready to publish.
student-copy:
	@test -n "$(DEST)" || { echo "usage: make student-copy DEST=../course-for-students"; exit 2; }
	@test ! -e "$(DEST)" || { echo "$(DEST) exists: choose a new folder"; exit 2; }
	mkdir -p "$(DEST)" && git archive HEAD | tar -x -C "$(DEST)" && rm -rf "$(DEST)/solutions"
	@if [ -f "$(DEST)/STUDENTS.md" ]; then mv "$(DEST)/STUDENTS.md" "$(DEST)/README.md"; fi
	@cd "$(DEST)" && git init -q && git add -A && \
		git -c user.name="$$(git config user.name || echo course)" \
		    -c user.email="$$(git config user.email || echo course@localhost)" \
		    commit -q -m "Training Neural Networks: the students' copy of the course"
	@echo "student copy in $(DEST), a git repository with one commit: publish it as its own repository"

# Instructor-only targets need the instructor's notebooks.
need-solutions:
	@test -d solutions || { echo "This copy has no solutions/ (the instructor's notebooks): release, validate"; \
		echo "and formgrader are for instructors, in the course's own repository."; exit 2; }

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
