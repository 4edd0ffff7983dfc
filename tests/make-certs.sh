#!/bin/sh
# make-certs.sh DIR: X.509 certificates for TLS tests, as nbdkit and
# libnbd look for them in a folder:
#   DIR/srv       ca-cert.pem, server-cert.pem, server-key.pem (for localhost)
#   DIR/cli       ca-cert.pem, client-cert.pem, client-key.pem
#   DIR/anon      ca-cert.pem alone: a client with no certificate
#   DIR/stranger  the certificate of a CA that signed none of these
# Keys are mode 0600.  Made fresh for each test: nothing here is a secret.
set -eu
cd "$1"
mkdir srv cli anon stranger
newcert() { # KEY OUT SUBJECT [openssl req options...]
	key=$1 out=$2 subject=$3
	shift 3
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$subject" \
		-keyout "$key" -out "$out" "$@" 2>/dev/null
}
sign() { # CSR EXTENSIONS OUT
	printf '%b' "$2" >"$1.ext"
	openssl x509 -req -in "$1" -CA srv/ca-cert.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
		-extfile "$1.ext" -out "$3" 2>/dev/null
}
newcert ca-key.pem srv/ca-cert.pem "dmiofs test CA" -x509 -days 30
newcert stranger-key.pem stranger/ca-cert.pem "a stranger CA" -x509 -days 30
cp srv/ca-cert.pem cli/ca-cert.pem
cp srv/ca-cert.pem anon/ca-cert.pem
newcert srv/server-key.pem server.csr localhost
newcert cli/client-key.pem client.csr client
sign server.csr 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' srv/server-cert.pem
sign client.csr 'extendedKeyUsage=clientAuth\n' cli/client-cert.pem
chmod 600 srv/server-key.pem cli/client-key.pem
