# Kaldi-style option parsing, sourced by a bash script after its option variables:
#
#   nj=4                 # number of parallel jobs
#   cmd=run.py           # job runner (see cmd.sh)
#   dither=true          # add dither to the features
#   usage="Usage: $0 [options] <data-dir>\n e.g.: $0 --nj 8 data/vox1"
#   . utils/parse_options.sh
#
# Semantics:
#   --foo-bar v and --foo-bar=v set foo_bar (dashes become underscores); foo_bar must already be
#   defined (possibly empty), otherwise "unknown option --foo-bar" and exit 1.
#   A variable whose current value is true or false accepts only true or false.
#   --config <file> sources <file> (lines name=value) before the other options are applied, so
#   command-line options override the file (Kaldi). Exception: a script that defines its own
#   `config` variable (e.g. a YAML path) gets --config as an ordinary option.
#   --help / -h prints $usage and the option list, generated from the caller's
#   `name=value  # comment` lines above the line that sources this file, then exits 0.
#   Parsing stops at the first argument that is not an option, or after `--`; the remaining
#   arguments stay in "$@". Works under `set -euo pipefail`.
# Helper variables are prefixed _po_ and unset at the end.

_po_script=${BASH_SOURCE[1]:-$0}
_po_name=${_po_script##*/}

_po_die() {
  echo "$_po_name: $*" >&2
  exit 1
}

# Prints "  --name (default) comment" for each `name=default  # comment` line of the caller that
# precedes the line sourcing parse_options.sh.
_po_print_help() {
  local line var rest value comment i c q prev
  if [ -n "${usage:-}" ]; then
    printf '%b\n\n' "$usage"
  fi
  echo "Options:"
  [ -r "$_po_script" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    if [[ $line =~ ^[[:space:]]*(\.|source)[[:space:]]+[^[:space:]]*parse_options\.sh ]]; then
      break
    fi
    [[ $line =~ ^([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    var=${BASH_REMATCH[1]}
    rest=${BASH_REMATCH[2]}
    [ "$var" = usage ] && continue
    # Split the value from a trailing comment: a '#' outside quotes that follows whitespace.
    value=$rest
    comment=""
    q=""
    prev=" "
    for ((i = 0; i < ${#rest}; i++)); do
      c=${rest:i:1}
      if [ -n "$q" ]; then
        [ "$c" = "$q" ] && q=""
      elif [ "$c" = '"' ] || [ "$c" = "'" ]; then
        q=$c
      elif [ "$c" = "#" ] && [[ $prev == [[:space:]] ]]; then
        value=${rest:0:i}
        comment=${rest:i+1}
        break
      fi
      prev=$c
    done
    value=${value%"${value##*[![:space:]]}"}
    comment=${comment#"${comment%%[![:space:]]*}"}
    if [[ $value =~ ^\"(.*)\"$ ]] || [[ $value =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    echo "  --${var//_/-} ($value)${comment:+ $comment}"
  done < "$_po_script"
}

# --config files are read first so that explicit options override them.
_po_i=1
[ -n "${config+x}" ] && _po_i=$(($# + 1))  # the script's own --config option
while [ "$_po_i" -le $# ]; do
  _po_arg=${!_po_i}
  case "$_po_arg" in
    --config=*) _po_cfg=${_po_arg#--config=} ;;
    --config)
      _po_i=$((_po_i + 1))
      [ "$_po_i" -le $# ] || _po_die "option --config needs a value"
      _po_cfg=${!_po_i} ;;
    --|--help|-h) break ;;
    --*=*) _po_i=$((_po_i + 1)); continue ;;
    --*) _po_i=$((_po_i + 2)); continue ;;
    *) break ;;
  esac
  [ -r "$_po_cfg" ] || _po_die "cannot read config file '$_po_cfg' (given by --config)"
  # shellcheck disable=SC1090
  . "$_po_cfg"
  _po_i=$((_po_i + 1))
done

while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --help|-h) _po_print_help; exit 0 ;;
    --*=*) _po_opt=${1%%=*}; _po_val=${1#*=}; shift ;;
    --*)
      _po_opt=$1
      [ $# -ge 2 ] || _po_die "option $_po_opt needs a value"
      _po_val=$2
      shift 2 ;;
    *) break ;;
  esac
  if [ "$_po_opt" = --config ] && [ -z "${config+x}" ]; then continue; fi
  _po_var=${_po_opt#--}
  _po_var=${_po_var//-/_}
  if ! [[ $_po_var =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || [ -z "${!_po_var+x}" ]; then
    _po_die "unknown option $_po_opt (try --help)"
  fi
  case "${!_po_var}" in
    true|false)
      case "$_po_val" in
        true|false) ;;
        *) _po_die "option $_po_opt expects true or false, got '$_po_val'" ;;
      esac ;;
  esac
  printf -v "$_po_var" '%s' "$_po_val"
done

unset -v _po_script _po_name _po_arg _po_i _po_cfg _po_opt _po_val _po_var
unset -f _po_die _po_print_help
