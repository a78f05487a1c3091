#!/bin/sh
# As the official mysql image: MYSQL_ROOT_PASSWORD (or _FILE) is required and is the
# password of root@localhost and root@'%' (no socket authentication: every client, even
# in the container, gives it); MYSQL_DATABASE, MYSQL_USER and MYSQL_PASSWORD optional.
set -eu
if [ -n "${MYSQL_ROOT_PASSWORD_FILE:-}" ]; then MYSQL_ROOT_PASSWORD=$(cat "$MYSQL_ROOT_PASSWORD_FILE"); fi
: "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD or MYSQL_ROOT_PASSWORD_FILE is required}"
DATA=/var/lib/mysql
mkdir -p "$DATA" /run/mysqld
chown mysql:mysql "$DATA" /run/mysqld
if [ ! -d "$DATA/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$DATA" --skip-test-db >/dev/null
    mariadbd --user=mysql --datadir="$DATA" --skip-networking --socket=/run/mysqld/init.sock &
    pid=$!
    for _ in $(seq 100); do
        mysqladmin --socket=/run/mysqld/init.sock ping --silent 2>/dev/null && break
        sleep 0.2
    done
    {
        echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('$MYSQL_ROOT_PASSWORD');"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "${MYSQL_DATABASE:-}" ]; then
            echo "CREATE DATABASE \`$MYSQL_DATABASE\`;"
        fi
        if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
            echo "CREATE USER '$MYSQL_USER'@'%' IDENTIFIED BY '$MYSQL_PASSWORD';"
            [ -z "${MYSQL_DATABASE:-}" ] || echo "GRANT ALL ON \`$MYSQL_DATABASE\`.* TO '$MYSQL_USER'@'%';"
        fi
    } | mysql --socket=/run/mysqld/init.sock
    kill "$pid"
    wait "$pid" || true
fi
exec mariadbd --user=mysql --datadir="$DATA" --bind-address=0.0.0.0 \
    --socket=/run/mysqld/mysqld.sock --skip-name-resolve
