#!/usr/bin/env bash
# Grading workers as a Slurm job array (README "Grading past one machine").
#
# Each array task runs one grading worker that claims submissions from the PostgreSQL gradebook
# until none is left. Tasks may start at any time and on any node that sees the course folder.
#   sbatch --export=ALL,ASSIGNMENT=01_pruning,MCL_GRADEBOOK_URL=postgresql+psycopg://... deploy/slurm/grade-array.sh
#   then: MCL_GRADEBOOK_URL=... make grade ASSIGNMENT=01_pruning GRADE_ARGS=--sheet-only
#SBATCH --job-name=mcl-grade
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=02:00:00
#SBATCH --output=mcl-grade-%A_%a.log
set -euo pipefail
: "${ASSIGNMENT:?set ASSIGNMENT, e.g. sbatch --export=ALL,ASSIGNMENT=01_pruning ...}"
: "${MCL_GRADEBOOK_URL:?set MCL_GRADEBOOK_URL to the PostgreSQL gradebook}"
REPO="${MCL_REPO:-${SLURM_SUBMIT_DIR:-$PWD}}"        # this repository, after make setup
COURSE_ROOT="${COURSE_ROOT:-$REPO}"                   # the shared course folder
SOURCE_ARGS=()                                        # default: the config's build/source
if [ -n "${COURSE_SOURCE:-}" ]; then SOURCE_ARGS=(--source "$COURSE_SOURCE"); fi
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
export MCL_GRADEBOOK_URL
cd "$REPO"
echo "array task ${SLURM_ARRAY_TASK_ID:-0} on $(hostname): grading $ASSIGNMENT"
exec "$PYTHON" -m course_tools.grade "$ASSIGNMENT" --worker --root "$COURSE_ROOT" "${SOURCE_ARGS[@]}"
