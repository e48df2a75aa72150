# shellcheck shell=bash
# Shared helpers for scripts/setup and scripts/test. Source it; don't run it.
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Repository root: the parent of the scripts/ directory holding this file.
RP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RP_ROOT

if [[ -t 2 && -z "${NO_COLOR:-}" ]]; then
  _rp_bold=$'\e[1m' _rp_red=$'\e[31m' _rp_yellow=$'\e[33m' _rp_green=$'\e[32m' _rp_reset=$'\e[0m'
else
  _rp_bold='' _rp_red='' _rp_yellow='' _rp_green='' _rp_reset=''
fi

# Messages go to stderr, prefixed with the calling script's name.
_rp_me="$(basename "$0")"
log()  { printf '%s==> %s:%s %s\n' "$_rp_bold" "$_rp_me" "$_rp_reset" "$*" >&2; }
ok()   { printf '%s==> %s:%s %s\n' "$_rp_green" "$_rp_me" "$_rp_reset" "$*" >&2; }
warn() { printf '%swarning: %s:%s %s\n' "$_rp_yellow" "$_rp_me" "$_rp_reset" "$*" >&2; }
die()  { printf '%serror: %s:%s %s\n' "$_rp_red" "$_rp_me" "$_rp_reset" "$*" >&2; exit 1; }

have() { command -v "$1" >/dev/null 2>&1; }

# Print the number of CPUs (at least 1).
ncpus() { nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1; }
