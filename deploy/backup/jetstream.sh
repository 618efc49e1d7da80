#!/usr/bin/env bash
# Back up, check and restore the JetStream event log (the scale-out log) through
# JetStream's own snapshot API, driven by `hubbub backup jetstream` (nats-py; no `nats`
# CLI needed). The streams are those under HUBBUB_STREAM_PREFIX on HUBBUB_NATS_URL.
#
#   deploy/backup/jetstream.sh backup  DIR           # every stream's snapshot, checksummed
#   deploy/backup/jetstream.sh verify  DIR
#   deploy/backup/jetstream.sh restore DIR [--force] # --force replaces existing streams
#
# Run it AFTER deploy/backup/postgres.sh has dumped every read model's database, so no
# stored log position is past what the snapshots hold. With the `nats` CLI the same is
# `nats stream backup STREAM DIR` per stream and `nats stream restore DIR`.
# HUBBUB_NATS_URL may list several servers, separated by commas. The backup is readable
# by its owner only.
set -euo pipefail
umask 077

HUBBUB=${HUBBUB:-hubbub}

usage() {
    sed -n '2,9p' "$0" >&2
    exit 2
}

case ${1:-} in
    backup) [[ $# == 2 ]] || usage; exec "$HUBBUB" --event-log jetstream backup jetstream create "$2" ;;
    verify) [[ $# == 2 ]] || usage; exec "$HUBBUB" backup jetstream verify "$2" ;;
    restore)
        [[ $# == 2 || ( $# == 3 && $3 == --force ) ]] || usage
        exec "$HUBBUB" --event-log jetstream backup jetstream restore "$2" ${3:+"$3"} ;;
    *) usage ;;
esac
