//! The rustls client configuration of `rediss://` connections: made once
//! per locker (the system's roots are read once, not at each connect).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};
use crate::options::Tls;

/// The configuration for `files` (a CA to trust instead of the system's
/// roots, a client certificate and its key); `insecure` (a `rediss://`
/// URL ending in `#insecure`) checks no certificate, as the redis crate
/// does.
pub(crate) fn config(files: Option<&Tls>, insecure: bool) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid(format!("invalid redis settings: {e}")))?;
    let ca = match files.and_then(|f| f.ca_file.as_ref()) {
        Some(path) => Some(read(path, "CA file")?),
        None => None,
    };
    let roots = match ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| {
                    Error::invalid(format!(
                        "invalid redis settings: unable to parse the root certificate PEM: {e}"
                    ))
                })?;
                roots.add(cert).map_err(|_| {
                    Error::invalid("invalid redis settings: unable to parse TLS trust anchors")
                })?;
            }
            roots
        }
        None if insecure => RootCertStore::empty(),
        None => {
            // What loads: a system with no roots at all fails each
            // handshake (a connection error), not the locker's creation.
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            roots
        }
    };
    let builder = builder.with_root_certificates(roots);
    let cert = files.and_then(|f| f.cert_file.as_ref());
    let key = files.and_then(|f| f.key_file.as_ref());
    let mut config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(&read(cert, "certificate file")?)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::invalid(format!(
                        "invalid redis settings: unable to parse the client certificate PEM: {e}"
                    ))
                })?;
            let key = PrivateKeyDer::from_pem_slice(&read(key, "key file")?).map_err(|e| {
                Error::invalid(format!(
                    "invalid redis settings: unable to read a private key from the PEM: {e}"
                ))
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::invalid(format!("invalid redis settings: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::invalid(
                "a TLS client certificate needs its key, and the other way round",
            ));
        }
    };
    if insecure {
        config.enable_sni = false;
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(NoCertificateVerification {
                supported: provider.signature_verification_algorithms,
            }));
    }
    Ok(Arc::new(config))
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::invalid(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

/// `#insecure`: any certificate for any name (signatures are checked).
#[derive(Debug)]
struct NoCertificateVerification {
    supported: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoCertificateVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.supported)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.supported)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.supported.supported_schemes()
    }
}
