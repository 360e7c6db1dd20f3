-- A sender may be identified by the TLS client certificate it presents on MLLP: the SHA-256 of
-- the certificate's DER, as `openssl x509 -noout -fingerprint -sha256` prints it without colons,
-- in lower case. A certificate that names a sender decides the facility, whatever MSH-4 says.
ALTER TABLE interop.senders ADD COLUMN certificate_sha256 text UNIQUE CHECK (certificate_sha256 ~ '^[0-9a-f]{64}$');
