#!/usr/bin/env bash
# Back up, check and restore one of Hubbub's PostgreSQL databases (relational store,
# listening, notifications, rollups, mentions baseline) with pg_dump's custom format.
#
#   deploy/backup/postgres.sh backup  DATABASE_URL FILE.dump   # consistent while it runs
#   deploy/backup/postgres.sh verify  FILE.dump                # checksum and table of contents
#   deploy/backup/postgres.sh restore FILE.dump DATABASE_URL   # into an EMPTY database
#
# pg_dump reads one snapshot of the database (a repeatable-read transaction), so the dump
# is consistent while the platform writes. FILE.dump.sha256 is written beside the dump
# and checked before a restore. Restoring into a database that has tables is refused
# (pass --force as the last argument to restore over it: objects are dropped first).
# DATABASE_URL may be Hubbub's own form (postgresql+psycopg://user:password@host/db):
# the driver part is dropped for libpq, and the password is handed over in PGPASSWORD,
# never on a command line (where `ps` shows it). Dumps are readable by their owner only.
# At scale, dump every read model's database BEFORE the JetStream streams
# (deploy/backup/jetstream.sh), so no stored log position is past the log backed up.
set -euo pipefail
umask 077

usage() {
    sed -n '2,8p' "$0" >&2
    exit 2
}

die() {
    echo "error: $*" >&2
    exit 1
}

# libpq_url URL: URL as libpq reads it (postgresql://, no password); the password, decoded,
# is exported as PGPASSWORD. Sets LIBPQ_URL.
libpq_url() {
    local url=$1
    if [[ $url =~ ^postgres(ql)?\+[^:/]*://(.*)$ ]]; then
        url="postgresql://${BASH_REMATCH[2]}"
    fi
    [[ $url =~ ^postgres(ql)?:// ]] || die "DATABASE_URL is not a PostgreSQL URL (postgresql://...)"
    if [[ $url =~ ^(postgres(ql)?://)([^/?#]*)@([^@]*)$ ]]; then
        local scheme=${BASH_REMATCH[1]} userinfo=${BASH_REMATCH[3]} rest=${BASH_REMATCH[4]}
        if [[ $userinfo == *:* ]]; then
            local password=${userinfo#*:}
            password=${password//\\/\\\\}
            PGPASSWORD=$(printf '%b' "${password//%/\\x}")
            export PGPASSWORD
            userinfo=${userinfo%%:*}
        fi
        url="$scheme$userinfo@$rest"
    fi
    LIBPQ_URL=$url
}

checksum() {
    sha256sum "$1" | cut -d' ' -f1
}

verify() {
    local dump=$1
    [[ -f $dump ]] || die "$dump: no such file"
    [[ -f $dump.sha256 ]] || die "$dump.sha256: no checksum beside the dump"
    [[ $(checksum "$dump") == "$(cat "$dump.sha256")" ]] || die "$dump: checksum differs from $dump.sha256"
    local entries
    entries=$(pg_restore --list "$dump" 2>&1) || die "$dump: not a readable pg_dump archive: $entries"
    echo "$dump: checksum matches; $(grep -c ' TABLE DATA ' <<<"$entries" || true) tables"
}

backup() {
    local dump=$2
    [[ -e $dump ]] && die "$dump exists; choose a new file"
    libpq_url "$1"
    local url=$LIBPQ_URL
    pg_dump --format=custom --no-owner --no-privileges --file="$dump.partial" "$url" \
        || { rm -f "$dump.partial"; die "pg_dump failed"; }
    mv "$dump.partial" "$dump"
    checksum "$dump" >"$dump.sha256"
    verify "$dump"
}

restore() {
    local dump=$1 force=${3:-}
    verify "$dump"
    libpq_url "$2"
    local url=$LIBPQ_URL
    local tables
    tables=$(psql --no-psqlrc --tuples-only --no-align "$url" \
        -c "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')") \
        || die "cannot reach the database"
    if [[ $tables != 0 && $force != --force ]]; then
        die "the database holds $tables tables; restore into an empty one (or pass --force)"
    fi
    local clean=()
    [[ $force == --force ]] && clean=(--clean --if-exists)
    pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
        "${clean[@]}" --dbname="$url" "$dump"
    echo "restored $dump"
}

case ${1:-} in
    backup) [[ $# == 3 ]] || usage; backup "$2" "$3" ;;
    verify) [[ $# == 2 ]] || usage; verify "$2" ;;
    restore) [[ $# == 3 || $# == 4 ]] || usage; restore "$2" "$3" "${4:-}" ;;
    *) usage ;;
esac
