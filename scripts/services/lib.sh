# shellcheck shell=bash
# What the service scripts (scripts/services/*.sh) share; sourced by them, not run. Each sets
# SERVICE (its log prefix) before sourcing, calls `service_args DEFAULT_PORT "$@"`, defines
# do_start and do_stop, and ends with `service_main`.

log() { echo "$SERVICE: $*" >&2; }

usage() {
  echo "usage: $0 start|stop|env DIR [PORT]" >&2
  exit 2
}

# Sets cmd, dir (made absolute) and port (the third argument, else DEFAULT_PORT) from
# `start|stop|env DIR [PORT]`.
service_args() {
  local default_port=$1
  shift
  [ $# -ge 2 ] || usage
  cmd=$1
  dir=$2
  port=${3:-$default_port}
  case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
}

# A process that exists and is not a zombie (a zombie's parent may be slow to reap it).
alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Waits up to $2 tenths of a second for the command in $1 to succeed.
wait_for() {
  local i
  for ((i = 0; i < $2; i++)); do
    if eval "$1"; then return 0; fi
    sleep 0.1
  done
  return 1
}

# Waits up to 5 s until none of the given pids is alive; fails if one still is.
wait_gone() {
  local i pid alive_any
  for ((i = 0; i < 50; i++)); do
    alive_any=0
    for pid in "$@"; do if alive "$pid"; then alive_any=1; fi; done
    [ "$alive_any" = 0 ] && return 0
    sleep 0.1
  done
  return 1
}

# Runs $cmd: start, stop, or env (prints DIR/env as `export K=V` lines, eval-able).
service_main() {
  case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    env)
      [ -f "$dir/env" ] || {
        log "not running: no $dir/env (run: $0 start $dir)"
        exit 1
      }
      sed 's/^/export /' "$dir/env"
      ;;
    *) usage ;;
  esac
}

# Prints a TCP port that is free on 127.0.0.1 right now (the kernel's pick; node is always here).
free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}
