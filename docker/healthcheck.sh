#!/bin/bash
# Container health check without curl: GET /healthz over bash's /dev/tcp; exit 0 on HTTP 200.
# Talks to the port camd listens on (CAMD_PORT, default 8080) on loopback, or on CAMD_LISTEN
# when camd is bound to one specific address.
port=${CAMD_PORT:-8080}
host=127.0.0.1
case ${CAMD_LISTEN:-0.0.0.0} in
  0.0.0.0) ;;
  ::) host=::1 ;;
  *) host=$CAMD_LISTEN ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
IFS= read -r -t 3 status <&3 || exit 1
case $status in
  "HTTP/1."?" 200"*) exit 0 ;;
esac
echo "healthz: $status" >&2
exit 1
