# shellcheck shell=bash disable=SC2034  # the variables set here are used by the sourcing scripts
# Helpers shared by the scripts in scripts/ (sourced, not run).

# The broker everything talks to unless told otherwise: the local RabbitMQ with its default user.
DEFAULT_AMQP_URL='amqp://guest:guest@127.0.0.1:5672/%2f'

# Messages go to stderr so that a script's stdout stays usable by a caller.
log() { printf '%s: %s\n' "${LOG_TAG:-${0##*/}}" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# parse_amqp_url URL: sets AMQP_SCHEME, AMQP_USER, AMQP_PASS, AMQP_HOST, AMQP_PORT, AMQP_VHOST
# (user, password and vhost percent-encoded as in the URL). Only what the scripts need: no query
# parameters, no multi-host URLs.
parse_amqp_url() {
    local url=$1 rest auth hostport
    case $url in
    amqp://*) AMQP_SCHEME=amqp AMQP_PORT=5672 ;;
    amqps://*) AMQP_SCHEME=amqps AMQP_PORT=5671 ;;
    *)
        log "error: not an amqp:// or amqps:// URL: $url"
        return 1
        ;;
    esac
    rest=${url#*://}
    rest=${rest%%\?*}
    AMQP_VHOST=/
    if [[ $rest == */* ]]; then
        AMQP_VHOST=${rest#*/}
        rest=${rest%%/*}
    fi
    AMQP_USER=guest AMQP_PASS=guest
    if [[ $rest == *@* ]]; then
        auth=${rest%@*}
        rest=${rest##*@}
        AMQP_USER=${auth%%:*}
        [[ $auth == *:* ]] && AMQP_PASS=${auth#*:}
    fi
    hostport=$rest
    if [[ $hostport == \[* ]]; then # [ipv6]:port
        AMQP_HOST=${hostport%%]*}
        AMQP_HOST=${AMQP_HOST#[}
        hostport=${hostport#*]}
        [[ $hostport == :* ]] && AMQP_PORT=${hostport#:}
    else
        AMQP_HOST=${hostport%%:*}
        [[ $hostport == *:* ]] && AMQP_PORT=${hostport##*:}
    fi
    [[ -n $AMQP_HOST ]] || AMQP_HOST=localhost
    if ! [[ $AMQP_PORT =~ ^[0-9]+$ ]]; then
        log "error: bad port in AMQP URL: $AMQP_PORT"
        return 1
    fi
}

# tcp_open HOST PORT: true if something accepts a TCP connection there within 3 s.
tcp_open() {
    # shellcheck disable=SC2016  # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# is_local_host HOST: true for the loopback names a locally started broker answers on.
is_local_host() {
    case $1 in
    127.* | localhost | ::1 | 0.0.0.0) return 0 ;;
    *) return 1 ;;
    esac
}

# repo_root: the repository that holds this scripts/ directory.
repo_root() {
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P
}
