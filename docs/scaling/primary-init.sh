#!/bin/sh
# docker-compose.yml: run once by the primary's entrypoint on a new data directory. Lets the
# standby service stream WAL (replication connections from the compose network).
set -e
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
