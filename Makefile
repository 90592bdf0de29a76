# Two commands: `make lab` opens the course, `make test` runs every test.
# Both create .venv on first use and reinstall only when the pins change.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8888
IP     ?= 127.0.0.1
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: setup lab test bench release validate student-copy clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $(STAMP)

# --no-browser and --allow-root make it work on a headless machine and in a container;
# IP=0.0.0.0 serves it to other machines.
# One BLAS thread per kernel (unless you set one): the notebooks' matrices are small, and extra threads
# cost more than they save.
lab: setup
	OPENBLAS_NUM_THREADS=$${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} \
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ip=$(IP) --port=$(PORT) \
		--ServerApp.root_dir="$(CURDIR)"

# Two test processes on two cores: one BLAS thread each, or they oversubscribe the machine.
test: setup
	MPLBACKEND=Agg OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(PY) -m pytest -n 2 $(PYTEST_ARGS)

bench: setup
	$(PY) -m nnlab.bench

release: setup
	$(PY) -m grader release

validate: setup
	$(PY) -m grader validate

# What students of a graded class get: the committed course without solutions/ (they hold the hidden tests).
student-copy:
	@test -n "$(DEST)" || { echo "usage: make student-copy DEST=../course-for-students"; exit 2; }
	@test ! -e "$(DEST)" || { echo "$(DEST) exists: choose a new folder"; exit 2; }
	mkdir -p "$(DEST)" && git archive HEAD | tar -x -C "$(DEST)" && rm -rf "$(DEST)/solutions"
	@echo "student copy in $(DEST): publish it as its own repository"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
