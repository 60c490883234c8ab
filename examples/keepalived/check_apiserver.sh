#!/bin/sh
# keepalived vrrp_script: succeed only if the API server answers /readyz to tlsboot's client
# certificate, verified against the cluster CA. An expired or foreign certificate is refused
# (401), so a host whose tlsboot is broken gives the virtual IP up.
APISERVER="${APISERVER:-https://127.0.0.1:6443}"
CERT="${CERT:-/var/lib/tlsboot/keepalived/out/client.pem}"
CA="${CA:-/var/lib/tlsboot/keepalived/out/ca.pem}"
exec curl --silent --show-error --fail --max-time 3 --cacert "$CA" --cert "$CERT" "$APISERVER/readyz" -o /dev/null
