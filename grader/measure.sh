#!/usr/bin/env bash
# Time `python -m grader autograde --jobs 2` against plain `nbgrader autograde` (+ generate_feedback)
# on N (default 40) copies of one submission.
# Usage: grader/measure.sh COURSE ASSIGNMENT NOTEBOOK SUBMISSION.ipynb WORKDIR [N=40]
#   e.g. grader/measure.sh . 01_activations activations.ipynb solutions/01_activations/activations.ipynb /tmp/measure
# WORKDIR is deleted and recreated. Nothing is written into COURSE.
set -euo pipefail
COURSE=$(cd "$1" && pwd); A=$2; NB=$3; SUB=$(cd "$(dirname "$4")" && pwd)/$(basename "$4"); W=$5; N=${6:-40}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
export PATH=$REPO/.venv/bin:$PATH MPLBACKEND=Agg
rm -rf "$W"; mkdir -p "$W/subs" "$W/nbg/source"
for i in $(seq -w 1 "$N"); do mkdir -p "$W/subs/s$i/$A"; cp "$SUB" "$W/subs/s$i/$A/$NB"; done

cd "$REPO"
/usr/bin/time -f "OURS wall %e s" "$PY" -m grader autograde "$W/subs" --out "$W/out" --jobs 2 --course "$COURSE" 2>&1 | tail -2

cp -r "$COURSE/solutions/$A" "$W/nbg/source/$A"
cd "$W/nbg"
echo 'c = get_config(); c.CourseDirectory.root = "."; c.ExecutePreprocessor.timeout = 120' > nbgrader_config.py
nbgrader generate_assignment "$A" --create --force > gen.log 2>&1
mkdir -p submitted; cp -r "$W/subs/"* submitted/
/usr/bin/time -f "NBGRADER autograde wall %e s" nbgrader autograde "$A" --create > ag.log 2>&1 || true
/usr/bin/time -f "NBGRADER generate_feedback wall %e s" nbgrader generate_feedback "$A" > fb.log 2>&1 || true
grep "wall" ag.log fb.log || true
"$PY" -c "
from nbgrader.api import Gradebook
gb = Gradebook('sqlite:///gradebook.db'); a = gb.find_assignment('$A')
print('nbgrader scores:', sorted({s.score for s in a.submissions}), 'n =', len(a.submissions)); gb.close()"
