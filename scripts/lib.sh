# Shell pieces the project's scripts share (local-stack.sh, deploy-check.sh): progress lines,
# steps with their output in a log, the cache under ~/.cache/sluice, Debian packages, and the
# cached CPython 3.13 with its virtualenvs. Source it; set SAY_AS to the script's name.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOCAL=${SLUICE_LOCAL_DIR:-$ROOT/.local}
CACHE=${SLUICE_CACHE:-$HOME/.cache/sluice}
LOGS=$LOCAL/logs
PY_SERIES=3.13
PY_PREFIX=$CACHE/python$PY_SERIES
SAY_AS=${SAY_AS:-sluice}

say() { printf '%s: %s\n' "$SAY_AS" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# step NAME CMD...: runs CMD with its output in .local/logs/NAME.log; on failure names the step and the log.
step() {
  local name=$1; shift
  mkdir -p "$LOGS"
  local log=$LOGS/$name.log
  if ! "$@" >"$log" 2>&1; then
    say "step '$name' failed; its log is $log; last lines:"
    tail -n 15 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
}

wait_for() { # wait_for WHAT SECONDS CMD...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { say "$what did not come up within ${secs}s (logs in $LOGS)"; return 1; }
    sleep 0.2
  done
}

# ---------------------------------------------------------------- Debian packages, CPython 3.13 and its virtualenvs

python_build() {
  local src=$CACHE/src apt=$CACHE/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$src"
  local uri
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { echo "no Debian mirror found in /etc/apt"; return 1; }
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri trixie main" >"$apt/sources.list"
  local opts=(-o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache")
  apt-get "${opts[@]}" update
  (cd "$src" && rm -rf Python-$PY_SERIES.* && apt-get "${opts[@]}" source --download-only "python$PY_SERIES" &&
    tar xf python${PY_SERIES}_*.orig.tar.xz)
  local dir
  dir=$(ls -d "$src"/Python-$PY_SERIES.*/ | head -n 1)
  (cd "$dir" && ./configure --prefix="$PY_PREFIX" --without-ensurepip && make -j"$(nproc)" && make install)
  rm -rf "$dir"
}

python_install() {
  if [ -x "$PY_PREFIX/bin/python$PY_SERIES" ]; then return; fi
  apt_install libssl-dev libffi-dev zlib1g-dev libsqlite3-dev libbz2-dev liblzma-dev libreadline-dev
  say "building CPython $PY_SERIES from Debian's source package into $PY_PREFIX (once; about 4-6 minutes)"
  step python-build python_build
}

# apt_install PACKAGE...: installs the Debian packages that are missing (as root, or through sudo).
apt_install() {
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || die "installing ${missing[*]} needs root (or sudo); install them and rerun"
    sudo=(sudo -n)
  fi
  say "installing Debian packages: ${missing[*]}"
  step "apt-${missing[0]}" "${sudo[@]}" sh -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
}

# venv_install DIR PACKAGE==VERSION...: a virtualenv of the cached CPython with those packages,
# made once (DIR/.complete marks a finished install; a half-made one is redone).
venv_install() {
  local dir=$1; shift
  [ -f "$dir/.complete" ] && return 0
  python_install
  say "installing $* into $dir"
  rm -rf "$dir"
  local name
  name=$(basename "$dir")
  step "$name" "$PY_PREFIX/bin/python$PY_SERIES" -m venv "$dir"
  step "$name-pip" "$dir/bin/pip" install --disable-pip-version-check "$@"
  touch "$dir/.complete"
}
