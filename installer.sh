#!/usr/bin/env bash
# raspapi quick installer: RaspAP's RestAPI as a hardened systemd service.
#
#   sudo ./installer.sh                 ask "Install and enable RestAPI? [Y/n]", then install
#   sudo ./installer.sh --yes           install without asking (scripts)
#   sudo ./installer.sh --upgrade       rebuild the venv from this source; config and keys kept
#   sudo ./installer.sh --uninstall     remove service, venv and unit; config and keys kept
#   sudo ./installer.sh --purge         the same, and remove config, keys and state too
#
# Run it from a checkout (or an unpacked release holding installer.sh and
# systemd/restapi.service); --wheel installs a built wheel instead of the
# checkout. See "Installing as a service" in README.md.
set -euo pipefail
umask 022

readonly PROG=installer.sh
readonly UNIT=restapi.service
readonly PROMPT="Install and enable RestAPI? [Y/n] "

usage() {
    cat <<EOF
Usage: $PROG [options]

Installs raspapi as $UNIT: a venv under /opt/raspapi, the unit in
/etc/systemd/system, the API key in /etc/raspap/api/.env (an existing key is kept).

  -y, --yes             do not ask (unattended runs)
      --port N          listen on port N (1024-65535; default: as configured, else 8081)
      --upgrade         rebuild the venv from the source even if unchanged; keeps config and keys
      --uninstall       remove the service, venv and unit; keep config, keys and state
      --purge           like --uninstall, and also remove config, keys and state
      --source DIR      install from the checkout DIR (default: the folder of $PROG)
      --wheel FILE      install this wheel instead of a checkout
      --wheelhouse DIR  offline: take raspapi's dependencies (and setuptools, to build a
                        checkout) from DIR only, never from the network; make DIR on a
                        machine with internet: pip wheel ./ setuptools -w DIR
      --no-apt          never run apt-get (fail if python3-venv is missing)
      --health-timeout S  seconds to wait for /health after a start (default 60)
      --root DIR        install everything under DIR instead of / (for tests: systemctl and
                        apt-get are still called as they are, so put stubs first on PATH)
  -h, --help            this text
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
usage_error() {
    printf '%s: %s (see --help)\n' "$PROG" "$*" >&2
    exit 2
}

# ---- options -----------------------------------------------------------------

action=install
assume_yes=0
purge=0
port=""
source_dir=""
wheel=""
wheelhouse=""
use_apt=1
health_timeout=60
root=""

while (($#)); do
    case $1 in
    -y | --yes) assume_yes=1 ;;
    --upgrade) action=upgrade ;;
    --uninstall) action=uninstall ;;
    --purge)
        action=uninstall
        purge=1
        ;;
    --no-apt) use_apt=0 ;;
    --port | --source | --wheel | --wheelhouse | --health-timeout | --root)
        (($# >= 2)) || usage_error "$1 needs a value"
        case $1 in
        --port) port=$2 ;;
        --source) source_dir=$2 ;;
        --wheel) wheel=$2 ;;
        --wheelhouse) wheelhouse=$2 ;;
        --health-timeout) health_timeout=$2 ;;
        --root) root=$2 ;;
        esac
        shift
        ;;
    --port=* | --source=* | --wheel=* | --wheelhouse=* | --health-timeout=* | --root=*)
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
        continue
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) usage_error "unknown option $1" ;;
    esac
    shift
done

if [[ -n $port ]]; then
    { [[ $port =~ ^[0-9]{1,5}$ ]] && ((10#$port >= 1024 && 10#$port <= 65535)); } ||
        usage_error "--port $port: give a port from 1024 to 65535 (lower ones need CAP_NET_BIND_SERVICE)"
    port=$((10#$port))
fi
[[ $health_timeout =~ ^[0-9]{1,4}$ ]] || usage_error "--health-timeout $health_timeout: give whole seconds"
if [[ -n $root ]]; then
    [[ -d $root ]] || usage_error "--root $root is not a folder"
    root=$(cd "$root" && pwd)
    [[ $root == / ]] && root=""
fi
if [[ -n $wheel ]]; then
    [[ -f $wheel && $wheel == *.whl ]] || usage_error "--wheel $wheel is not a wheel file"
    wheel=$(cd "$(dirname "$wheel")" && pwd)/$(basename "$wheel")
fi
if [[ -n $wheelhouse ]]; then
    [[ -d $wheelhouse ]] || usage_error "--wheelhouse $wheelhouse is not a folder"
    wheelhouse=$(cd "$wheelhouse" && pwd)
fi

# ---- paths (all under --root) ------------------------------------------------

readonly OPT=$root/opt/raspapi
readonly VENV_LINK=$OPT/venv
readonly CONF_DIR=$root/etc/raspap/api
readonly ENV_FILE=$CONF_DIR/.env
readonly UNIT_DIR=$root/etc/systemd/system
readonly UNIT_FILE=$UNIT_DIR/$UNIT
readonly STATE_DIR=$root/var/lib/raspapi
readonly BACKUP_DIR=$root/var/backups/raspapi
readonly RASPAP_CONFIG_PHP=$root/var/www/html/includes/config.php
readonly LOCK_FILE=$root/run/raspapi-installer.lock
# What tells our unit from another restapi.service (RaspAP's own): it runs our venv.
readonly OURS_MARK="ExecStart=/opt/raspapi/venv/bin/"

script_dir=""
if [[ -n ${BASH_SOURCE[0]:-} && -f ${BASH_SOURCE[0]} ]]; then
    script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi

# ---- state for the rollback --------------------------------------------------

tmp=""
new_venv=""         # venv folder made by this run
link_prev=""        # the venv symlink's target before this run ("" = none)
link_switched=0
unit_prev=""        # copy of our previous unit file ("" = there was none)
unit_written=0
env_prev=""         # copy of the .env before this run ("" = there was none)
env_touched=0
php_prev=""         # copy of RaspAP's config.php before this run
foreign_unit=""     # another program's restapi.service, moved away by this run
foreign_saved=""    # ... and where it went
foreign_enabled=0
foreign_active=0
created_dirs=()     # folders this run made (removed again when empty)
systemd_touched=0
unit_changed=0
locked=0
was_installed=0     # our unit was there before this run
was_enabled=0
was_active=0
committed=0

on_exit() {
    local status=$?
    trap - EXIT INT TERM
    if ((status != 0 && committed == 0)); then
        rollback || true
    fi
    [[ -n $tmp ]] && rm -rf "$tmp"
    ((locked)) && rm -f "$LOCK_FILE"
    exit "$status"
}

rollback() {
    local changed=0
    ((link_switched || unit_written || env_touched || systemd_touched)) || [[ -n $new_venv || -n $foreign_saved || -n $php_prev ]] || return 0
    printf '%s: rolling back: the system is left as it was\n' "$PROG" >&2
    if ((systemd_touched)) && ((was_installed == 0)); then
        systemctl disable --now "$UNIT" >/dev/null 2>&1 || true
    fi
    if ((link_switched)); then
        if [[ -n $link_prev ]]; then
            switch_link "$link_prev" || true
        else
            rm -f "$VENV_LINK"
        fi
    fi
    if ((unit_written)); then
        changed=1
        if [[ -n $unit_prev ]]; then
            cp -p "$unit_prev" "$UNIT_FILE" || true
        else
            rm -f "$UNIT_FILE"
        fi
    fi
    if ((env_touched)); then
        if [[ -n $env_prev ]]; then
            cp -p "$env_prev" "$ENV_FILE" || true
        else
            rm -f "$ENV_FILE"
        fi
    fi
    [[ -n $php_prev ]] && { cp -p "$php_prev" "$RASPAP_CONFIG_PHP" || true; }
    if [[ -n $foreign_saved ]]; then
        changed=1
        mv -f "$foreign_saved" "$foreign_unit" || true
    fi
    if ((changed)); then
        systemctl daemon-reload || true
    fi
    if [[ -n $foreign_saved ]]; then
        ((foreign_enabled)) && { systemctl enable "$UNIT" || true; }
        ((foreign_active)) && { systemctl start "$UNIT" || true; }
    elif ((systemd_touched && was_installed)); then
        if ((was_active)); then
            systemctl restart "$UNIT" || true
        else
            systemctl stop "$UNIT" || true
        fi
        ((was_enabled)) || systemctl disable "$UNIT" >/dev/null 2>&1 || true
    fi
    [[ -n $new_venv ]] && rm -rf "$new_venv"
    local i
    for ((i = ${#created_dirs[@]} - 1; i >= 0; i--)); do
        rmdir "${created_dirs[i]}" 2>/dev/null || true
    done
}

trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- helpers -----------------------------------------------------------------

# mkdir -p that remembers what it made, so a rollback can take it away again.
# The folder gets MODE, the parents it needs 0755.
make_dir() {
    local dir=$1 mode=$2 missing=() d
    d=$dir
    while [[ -n $d && $d != / && ! -d $d ]]; do
        missing=("$d" "${missing[@]}")
        d=$(dirname "$d")
    done
    for d in "${missing[@]}"; do
        mkdir -m "$([[ $d == "$dir" ]] && echo "$mode" || echo 755)" "$d" || die "cannot create $d"
        created_dirs+=("$d")
    done
}

# Small jobs for Python: dotenv reading and writing as raspapi does it, and HTTP.
pyhelp() {
    local python=$1
    shift
    "$python" - "$@" <<'PY'
import json, socket, sys, time, urllib.request

command, args = sys.argv[1], sys.argv[2:]
if command == "envget":  # FILE NAME: the value, as raspapi reads it
    from dotenv import dotenv_values
    value = dotenv_values(args[0]).get(args[1])
    print((value or "").strip())
elif command == "envset":  # FILE NAME VALUE: keeps every other line, mode 0600
    from pathlib import Path
    from raspapi.security.adminkey import set_env_value
    set_env_value(Path(args[0]), args[1], args[2])
elif command == "haskey":  # FILE: exit 0 when it holds an API key
    from pathlib import Path
    from raspapi.security.adminkey import AdminKey
    sys.exit(0 if AdminKey(Path(args[0])).current() else 1)
elif command == "keymode":  # FILE: the key file's mode, and its group when RaspAP's GUI reads it
    from pathlib import Path
    from raspapi.security.adminkey import key_file_access
    mode, group = key_file_access(Path(args[0]))
    print(f"{mode:o}", "" if group is None else group)
elif command == "version":
    import raspapi
    print(raspapi.__version__)
elif command == "inuse":  # HOST PORT: exit 0 when something accepts connections
    try:
        socket.create_connection((args[0], int(args[1])), timeout=2).close()
    except OSError:
        sys.exit(1)
elif command == "health":  # URL VERSION SECONDS: wait for raspapi VERSION's /health
    deadline = time.monotonic() + float(args[2])
    while True:
        try:
            with urllib.request.urlopen(args[0], timeout=2) as response:
                body = json.load(response)
            if body.get("status") == "ok" and body.get("version") == args[1]:
                sys.exit(0)
        except (OSError, ValueError, AttributeError):
            pass
        if time.monotonic() >= deadline:
            sys.exit(1)
        time.sleep(0.25)
PY
}

is_ours() { [[ -f $1 ]] && grep -q "^$OURS_MARK" "$1"; }

ask() {
    local question=$1 default=$2 answer=""
    if ((assume_yes)); then
        return 0
    fi
    if [[ -t 0 ]]; then
        printf '%s' "$question"
        IFS= read -r answer || true
    elif { : </dev/tty; } 2>/dev/null; then
        printf '%s' "$question" >/dev/tty
        IFS= read -r answer </dev/tty || true
    else
        printf '%s: no terminal to ask "%s"; run with --yes to go ahead without asking\n' \
            "$PROG" "${question% }" >&2
        exit 2
    fi
    answer=${answer:-$default}
    case $answer in
    [Yy] | [Yy][Ee][Ss]) return 0 ;;
    *)
        say "Aborted; nothing was changed."
        exit 1
        ;;
    esac
}

take_lock() {
    command -v flock >/dev/null || return 0
    { mkdir -p "$(dirname "$LOCK_FILE")" && exec 9>"$LOCK_FILE"; } || die "cannot open $LOCK_FILE"
    flock -n 9 || die "another $PROG is running (lock $LOCK_FILE)"
    locked=1
}

switch_link() {
    ln -sfn "$1" "$OPT/.venv.new" && mv -T "$OPT/.venv.new" "$VENV_LINK"
}

ensure_python() {
    local missing=()
    command -v python3 >/dev/null || missing=(python3 python3-venv)
    if ((${#missing[@]} == 0)) && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        missing=(python3-venv)
    fi
    if ((${#missing[@]})); then
        ((use_apt)) || die "${missing[*]} is missing: install it (apt-get install ${missing[*]}) or run without --no-apt"
        say "Installing ${missing[*]} with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
            apt-get update -q || die "apt-get update failed (no network?)"
            apt-get install -y -q --no-install-recommends "${missing[@]}" ||
                die "apt-get could not install ${missing[*]}"
        fi
        python3 -c 'import ensurepip, venv' 2>/dev/null ||
            die "python3-venv is installed, but python3 still cannot make a venv"
    fi
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "raspapi needs Python 3.11 or newer; this is $(python3 --version 2>&1)"
}

# The source: a wheel, or a checkout holding pyproject.toml and the unit file.
resolve_source() {
    if [[ -z $source_dir ]]; then
        source_dir=$script_dir
        [[ -n $source_dir ]] || die "cannot tell where $PROG is: run it from a checkout, or pass --source DIR"
    fi
    [[ -d $source_dir ]] || die "--source $source_dir is not a folder"
    source_dir=$(cd "$source_dir" && pwd)
    [[ -f $source_dir/systemd/$UNIT ]] || die "$source_dir/systemd/$UNIT is missing: run $PROG from a raspapi checkout or release"
    if [[ -z $wheel ]]; then
        grep -Eq '^name[[:space:]]*=[[:space:]]*"raspapi"' "$source_dir/pyproject.toml" 2>/dev/null ||
            die "$source_dir is not a raspapi checkout (no pyproject.toml naming raspapi)"
    fi
}

# Files that make up the installed package, in a stable order.
source_files() {
    (
        cd "$source_dir"
        for f in pyproject.toml README.md LICENSE* COPYING*; do
            [[ -f $f ]] && printf '%s\0' "$f"
        done
        find raspapi plugins webui -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 |
            LC_ALL=C sort -z
    )
}

fingerprint() {
    if [[ -n $wheel ]]; then
        printf 'wheel:%s\n' "$(sha256sum <"$wheel" | cut -d' ' -f1)"
    else
        printf 'source:%s\n' "$(source_files | (cd "$source_dir" && xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)"
    fi
}

venv_intact() {
    [[ -x $VENV_LINK/bin/python && -x $VENV_LINK/bin/raspapi-uvicorn ]] &&
        "$VENV_LINK/bin/python" -c 'import raspapi.cli' 2>/dev/null
}

build_venv() {
    local target
    new_venv=$OPT/venv-$(date +%Y%m%d-%H%M%S)-$$
    make_dir "$OPT" 755
    say "Creating the virtual environment $new_venv"
    python3 -m venv "$new_venv" || die "python3 -m venv $new_venv failed"
    if [[ -n $wheel ]]; then
        target=$wheel
    else
        # Build from a copy: pip would leave build/ and *.egg-info in the checkout.
        mkdir "$tmp/src"
        (cd "$source_dir" && source_files | xargs -0 cp --parents -t "$tmp/src") ||
            die "cannot copy the source from $source_dir"
        target=$tmp/src
    fi
    local offline=()
    if [[ -n $wheelhouse ]]; then
        offline=(--no-index --find-links "$wheelhouse")
        say "Installing raspapi and its dependencies (pip, offline from $wheelhouse)"
    else
        say "Installing raspapi and its dependencies (pip)"
    fi
    "$new_venv/bin/python" -m pip install --no-input --disable-pip-version-check \
        --no-warn-script-location --quiet "${offline[@]}" "$target" ||
        die "pip could not install raspapi from ${wheel:-$source_dir} (messages above; ${wheelhouse:+a wheel missing from $wheelhouse?}${wheelhouse:-no network?})"
    { "$new_venv/bin/python" -c 'import raspapi.cli' && [[ -x $new_venv/bin/raspapi-uvicorn ]]; } ||
        die "the new venv $new_venv does not work"
    printf '%s\n' "$source_print" >"$new_venv/raspapi-source"
}

# Another program's restapi.service (RaspAP's own RestAPI runs uvicorn from
# /etc/raspap/api as user pi): stop it, keep its key, save the unit.
replace_foreign_unit() {
    local dir f
    # The unit systemd would load: the first one in its order of precedence.
    for dir in "$UNIT_DIR" "$root/usr/lib/systemd/system" "$root/lib/systemd/system"; do
        f=$dir/$UNIT
        if [[ -f $f ]]; then
            is_ours "$f" || foreign_unit=$f
            break
        fi
    done
    [[ -n $foreign_unit ]] || return 0
    local what="another program's $UNIT"
    grep -q uvicorn "$foreign_unit" && what="RaspAP's RestAPI ($UNIT running uvicorn)"
    say "Replacing $what: stopping it; its unit is saved in $BACKUP_DIR"
    systemctl is-enabled --quiet "$UNIT" 2>/dev/null && foreign_enabled=1
    systemctl is-active --quiet "$UNIT" 2>/dev/null && foreign_active=1
    systemd_touched=1
    systemctl stop "$UNIT" || die "systemctl stop $UNIT failed"
    systemctl disable "$UNIT" || die "systemctl disable $UNIT failed"
    make_dir "$BACKUP_DIR" 700
    local saved=$BACKUP_DIR/$UNIT.before-raspapi n=1
    while [[ -e $saved ]] && ((n < 100)); do
        saved=$BACKUP_DIR/$UNIT.before-raspapi.$n
        n=$((n + 1))
    done
    [[ ! -e $saved ]] || die "too many saved units in $BACKUP_DIR"
    mv "$foreign_unit" "$saved" || die "cannot move $foreign_unit to $saved"
    foreign_saved=$saved
    # A same-named unit left in a lower-priority folder would come back on uninstall.
    for dir in "$root/usr/lib/systemd/system" "$root/lib/systemd/system"; do
        f=$dir/$UNIT
        if [[ -f $f ]] && ! is_ours "$f"; then
            warn "$f is also another program's $UNIT; it is left in place (ours in $UNIT_DIR wins)"
        fi
    done
}

configure() {
    local python=$1 host
    make_dir "$CONF_DIR" 755
    if [[ -e $ENV_FILE ]]; then
        env_prev=$tmp/env.before
        cp -p "$ENV_FILE" "$env_prev" || die "cannot copy $ENV_FILE"
    fi
    if ! pyhelp "$python" haskey "$ENV_FILE"; then
        say "Generating an API key"
        env_touched=1
        local out
        # stdout is the key: never shown.
        out=$(env -i PATH="$PATH" RASPAPI_ENV_FILE="$ENV_FILE" \
            "$(dirname "$python")/raspapi" keygen --save 2>&1 >/dev/null) ||
            die "raspapi keygen --save could not write $ENV_FILE: $out"
    fi
    if ! grep -Eq '^[[:space:]]*(export[[:space:]]+)?RASPAPI_HOST[[:space:]]*=' "$ENV_FILE"; then
        # The service listens on every interface, as RaspAP's does; this line, not
        # the unit, says so, so an edit of .env is all it takes to change it.
        env_touched=1
        pyhelp "$python" envset "$ENV_FILE" RASPAPI_HOST 0.0.0.0 || die "cannot write $ENV_FILE"
    fi
    if [[ -n $port && $(pyhelp "$python" envget "$ENV_FILE" RASPAPI_PORT) != "$port" ]]; then
        env_touched=1
        pyhelp "$python" envset "$ENV_FILE" RASPAPI_PORT "$port" || die "cannot write $ENV_FILE"
    fi
    # 0600; or root:www-data 0640 where RaspAP's GUI is installed, so its RestAPI page shows the key.
    local want group
    read -r want group < <(pyhelp "$python" keymode "$ENV_FILE") || die "cannot tell the mode $ENV_FILE needs"
    if [[ -n $group && $(stat -c %u:%g "$ENV_FILE") != "0:$group" ]]; then
        say "Giving $ENV_FILE to root:www-data (mode 0640), so RaspAP's GUI can show the key"
        env_touched=1
        { chmod 600 "$ENV_FILE" && chown "0:$group" "$ENV_FILE"; } || die "cannot chown $ENV_FILE"
    fi
    if [[ $(stat -c %a "$ENV_FILE") != "$want" ]]; then
        if [[ -n $group ]]; then
            say "Making $ENV_FILE readable by root and RaspAP's GUI only (mode 0640): it holds the API key"
        else
            say "Making $ENV_FILE readable by root only (mode 0600): it holds the API key"
        fi
        env_touched=1
        chmod "$want" "$ENV_FILE" || die "cannot chmod $ENV_FILE"
    fi
    if ((env_touched == 0)); then
        env_prev=""
    fi
}

# RaspAP's GUI shows its RestAPI page when this is true.
raspap_gui_flag() {
    local want=$1 have=false
    [[ $want == false ]] && have=true
    [[ -f $RASPAP_CONFIG_PHP ]] && grep -q "'RASPI_RESTAPI_ENABLED', $have" "$RASPAP_CONFIG_PHP" || return 0
    if [[ $action != uninstall ]]; then
        php_prev=$tmp/config.php.before
        cp -p "$RASPAP_CONFIG_PHP" "$php_prev" || die "cannot copy $RASPAP_CONFIG_PHP"
    fi
    sed -i "s/\('RASPI_RESTAPI_ENABLED', \)$have/\1$want/" "$RASPAP_CONFIG_PHP" ||
        die "cannot edit $RASPAP_CONFIG_PHP"
    say "RaspAP's GUI: RestAPI page $([[ $want == true ]] && echo enabled || echo disabled)"
}

install_unit() {
    local src=$source_dir/systemd/$UNIT
    if [[ -f $UNIT_FILE ]] && cmp -s "$src" "$UNIT_FILE"; then
        return 0
    fi
    make_dir "$UNIT_DIR" 755
    if [[ -f $UNIT_FILE ]]; then
        unit_prev=$tmp/unit.before
        cp -p "$UNIT_FILE" "$unit_prev" || die "cannot copy $UNIT_FILE"
    fi
    unit_written=1
    unit_changed=1
    { install -m 0644 "$src" "$UNIT_FILE.new" && mv -f "$UNIT_FILE.new" "$UNIT_FILE"; } ||
        die "cannot write $UNIT_FILE"
    say "Installed $UNIT_FILE"
}

do_install() {
    local installed_print="" restart=0 python version host health_host health_port

    if [[ -f $UNIT_FILE ]] && is_ours "$UNIT_FILE"; then
        was_installed=1
        systemctl is-enabled --quiet "$UNIT" 2>/dev/null && was_enabled=1
        systemctl is-active --quiet "$UNIT" 2>/dev/null && was_active=1
    fi
    if [[ -L $VENV_LINK ]]; then
        link_prev=$(readlink "$VENV_LINK")
        installed_print=$(cat "$VENV_LINK/raspapi-source" 2>/dev/null || true)
    fi
    if [[ $action == upgrade ]] && ((was_installed == 0)) && [[ -z $link_prev ]]; then
        die "raspapi is not installed here; run $PROG without --upgrade to install it"
    fi

    # Somebody else on the port, and not a restapi.service we are about to stop?
    health_port=${port:-}
    if [[ -z $health_port && -f $ENV_FILE ]]; then
        health_port=$(sed -n 's/^[[:space:]]*RASPAPI_PORT[[:space:]]*=[[:space:]]*["'\'']\{0,1\}\([0-9]*\).*/\1/p' "$ENV_FILE" | tail -n 1)
    fi
    health_port=${health_port:-8081}
    if ! systemctl is-active --quiet "$UNIT" 2>/dev/null && pyhelp python3 inuse 127.0.0.1 "$health_port"; then
        die "port $health_port is in use by another program; stop it, or choose another port with --port N"
    fi

    if [[ $action == upgrade ]] || [[ $installed_print != "$source_print" ]] || ! venv_intact; then
        build_venv
        python=$new_venv/bin/python
        restart=1
    else
        python=$VENV_LINK/bin/python
        say "raspapi in $VENV_LINK is up to date"
    fi
    version=$(pyhelp "$python" version) || die "cannot run $python"

    replace_foreign_unit
    [[ -n $foreign_saved ]] && restart=1
    configure "$python"
    ((env_touched)) && restart=1
    raspap_gui_flag true

    if [[ -n $new_venv ]]; then
        switch_link "$(basename "$new_venv")" || die "cannot point $VENV_LINK at $new_venv"
        link_switched=1
    fi
    install_unit
    if ((unit_changed)); then
        restart=1
        systemd_touched=1
        systemctl daemon-reload || die "systemctl daemon-reload failed"
    fi
    if ! systemctl is-enabled --quiet "$UNIT" 2>/dev/null; then
        systemd_touched=1
        systemctl enable "$UNIT" || die "systemctl enable $UNIT failed"
    fi
    if ((restart)) || ! systemctl is-active --quiet "$UNIT" 2>/dev/null; then
        systemd_touched=1
        say "Starting $UNIT"
        systemctl restart "$UNIT" || die "systemctl restart $UNIT failed"
    fi

    host=$(pyhelp "$python" envget "$ENV_FILE" RASPAPI_HOST)
    health_port=$(pyhelp "$python" envget "$ENV_FILE" RASPAPI_PORT)
    health_port=${health_port:-8081}
    case $host in "" | 0.0.0.0 | ::) health_host=127.0.0.1 ;; *:*) health_host="[$host]" ;; *) health_host=$host ;; esac
    if ! pyhelp "$python" health "http://$health_host:$health_port/health" "$version" "$health_timeout"; then
        if [[ -z $root ]] && command -v journalctl >/dev/null; then
            journalctl -u "$UNIT" -n 20 --no-pager >&2 || true
        fi
        die "raspapi $version did not answer http://$health_host:$health_port/health within ${health_timeout}s (journalctl -u $UNIT)"
    fi

    committed=1
    if [[ -n $new_venv ]]; then
        local old
        for old in "$OPT"/venv-*; do
            [[ $old == "$new_venv" || ! -d $old ]] || rm -rf "$old"
        done
    fi
    say ""
    if ((restart == 0 && was_active)); then
        say "raspapi $version is installed and running as $UNIT; nothing to change."
    else
        say "raspapi $version is running as $UNIT on port $health_port, enabled at boot."
    fi
    if [[ $(stat -c %a "$ENV_FILE") == 640 ]]; then
        say "API key: RASPAP_API_KEY in $ENV_FILE (readable by root and RaspAP's GUI only)."
    else
        say "API key: RASPAP_API_KEY in $ENV_FILE (readable by root only)."
    fi
    [[ -n $foreign_saved ]] && say "The previous $UNIT is saved as $foreign_saved."
    say "Try it:"
    say "  curl -H \"access_token: \$(sudo sed -n 's/^RASPAP_API_KEY=//p' $ENV_FILE)\" http://$health_host:$health_port/system"
    say "Check the install: sudo $VENV_LINK/bin/raspapi check    Logs: journalctl -u $UNIT"
}

do_uninstall() {
    local found=0
    if [[ -f $UNIT_FILE ]] && is_ours "$UNIT_FILE"; then
        found=1
        say "Stopping and disabling $UNIT"
        systemctl disable --now "$UNIT" || die "systemctl disable --now $UNIT failed"
        rm -f "$UNIT_FILE" || die "cannot remove $UNIT_FILE"
        systemctl daemon-reload || die "systemctl daemon-reload failed"
        systemctl reset-failed "$UNIT" >/dev/null 2>&1 || true
        say "Removed $UNIT_FILE"
    elif [[ -f $UNIT_FILE ]]; then
        warn "$UNIT_FILE is not raspapi's; it is left alone"
    fi
    if [[ -e $OPT || -L $OPT ]]; then
        found=1
        rm -rf "$OPT" || die "cannot remove $OPT"
        say "Removed $OPT"
    fi
    if ((found)); then
        raspap_gui_flag false
    fi
    if ((purge)); then
        local path
        for path in "$ENV_FILE" "$CONF_DIR/plugins.d" "$STATE_DIR"; do
            if [[ -e $path ]]; then
                rm -rf "$path" || die "cannot remove $path"
                say "Removed $path"
            fi
        done
        rmdir "$CONF_DIR" "$(dirname "$CONF_DIR")" 2>/dev/null || true
    elif [[ -e $ENV_FILE || -e $STATE_DIR ]]; then
        say "Kept $ENV_FILE (API key and settings) and $STATE_DIR; --purge removes them."
    fi
    if ((found == 0 && purge == 0)); then
        say "raspapi is not installed; nothing to remove."
    fi
    local saved
    for saved in "$BACKUP_DIR/$UNIT".before-raspapi*; do
        [[ -f $saved ]] || continue
        say "The $UNIT raspapi replaced is saved as $saved; to go back to it:"
        say "  sudo cp $saved /lib/systemd/system/$UNIT && sudo systemctl daemon-reload && sudo systemctl enable --now $UNIT"
    done
    committed=1
}

# ---- main --------------------------------------------------------------------

if [[ -z $root && $(id -u) != 0 ]]; then
    die "run as root: sudo ./$PROG"
fi
command -v systemctl >/dev/null || die "systemctl not found: raspapi runs as a systemd service"
if [[ -z $root && ! -d /run/systemd/system ]]; then
    die "systemd is not running on this machine (a container or chroot?)"
fi

[[ $action == uninstall ]] || resolve_source
case $action in
install) ask "$PROMPT" y ;;
upgrade) ask "Upgrade RestAPI (raspapi), keeping its configuration and keys? [Y/n] " y ;;
uninstall)
    if ((purge)); then
        ask "Remove RestAPI (raspapi) with its configuration, API key and state? [y/N] " n
    else
        ask "Remove RestAPI (raspapi)? Configuration and keys are kept. [y/N] " n
    fi
    ;;
esac

tmp=$(mktemp -d) || die "mktemp failed"
take_lock
if [[ $action == uninstall ]]; then
    do_uninstall
    exit 0
fi
ensure_python
source_print=$(fingerprint) || die "cannot read the source in ${wheel:-$source_dir}"
do_install
