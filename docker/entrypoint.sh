#!/bin/sh
# Entry point of the kit's image: the arguments are the driver's (npe-repro), so
#   docker compose run --rm repro stare_unet            runs a recipe
#   docker compose run --rm repro smoke --dry-run       prints its plan
#   docker compose run --rm repro                       runs the built-in default (longtail_synth)
#   docker compose run --rm repro tables [ARGS]         rebuilds results/tables (scripts/make_tables.sh)
#   docker compose run --rm repro npe-data list         any of the kit's commands (npe-*), or bash
set -e
if [ "$#" -eq 0 ]; then
  set -- longtail_synth
fi
case "$1" in
  tables) shift; exec /opt/npe/scripts/make_tables.sh "$@" ;;
  npe-*|bash|sh|python|python3) exec "$@" ;;
  *) exec npe-repro "$@" ;;
esac
