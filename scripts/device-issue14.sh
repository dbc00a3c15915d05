#!/usr/bin/env bash
# On the H200 machine (carry .whl, .gl, runs/mw-easy-50, runs/cw10-30), through scripts/device-background.sh:
# the mw-easy column study of benchmarks/imitation_columns.py for seeds 0-2 and trc's cw10-imitation
# seeds 0-2 (`thalamus bench continual --cells metrics`), side by side on the one GPU.
set -uo pipefail
source scripts/device-setup.sh
scripts/device-columns.sh mw-easy-imitation:0:runs/mw-easy-50 mw-easy-imitation:1:runs/mw-easy-50 \
  mw-easy-imitation:2:runs/mw-easy-50 &
scripts/device-imitation.sh cw10-imitation:0:3:trc:runs/cw10-30 --cells metrics &
wait
