#!/bin/sh
# MariaDB 10.11 with its data directory on a named volume at /data: install the system
# tables once, create the application's database and user, then run the server.
# root is reachable through the local socket only (unix_socket auth).
set -eu
: "${MARIADB_USER:=app}" "${MARIADB_DATABASE:=app}"
if [ -n "${MARIADB_PASSWORD_FILE:-}" ]; then MARIADB_PASSWORD=$(cat "$MARIADB_PASSWORD_FILE"); fi
: "${MARIADB_PASSWORD:?MARIADB_PASSWORD or MARIADB_PASSWORD_FILE is required}"
mkdir -p /data /run/mysqld
chown mysql:mysql /data /run/mysqld
if [ ! -d /data/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/data --skip-test-db >/dev/null
    mariadbd --user=mysql --datadir=/data --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 100); do
        mariadb-admin --socket=/run/mysqld/init.sock ping --silent 2>/dev/null && break
        sleep 0.2
    done
    mariadb --socket=/run/mysqld/init.sock <<SQL
CREATE DATABASE \`$MARIADB_DATABASE\`;
CREATE USER '$MARIADB_USER'@'%' IDENTIFIED BY '$MARIADB_PASSWORD';
GRANT ALL ON \`$MARIADB_DATABASE\`.* TO '$MARIADB_USER'@'%';
SQL
    kill "$pid"
    wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir=/data --bind-address=0.0.0.0 \
    --socket=/run/mysqld/mysqld.sock --skip-name-resolve
