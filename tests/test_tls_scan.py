"""Every TLS listener of a running phigate, scanned from outside with sslyze.

One phigate serves SMTP with STARTTLS, SMTP with implicit TLS and the web app
over HTTPS (portal, reviewer, consent API), all with the server certificate.
sslyze scans the three at once over loopback, and each test checks one part of
the TLS policy on every listener: TLS 1.2 and 1.3 only; forward-secret AEAD
suites only (ECDHE with AES-GCM or ChaCha20-Poly1305); no compression; secure
renegotiation and no client-initiated renegotiation; not vulnerable to
Heartbleed, ROBOT or the CCS injection.
"""

from __future__ import annotations

from typing import Any

import pytest
from harness import Phigate, free_port
from sslyze import (
    AllScanCommandsAttempts,
    CipherSuiteAcceptedByServer,
    CipherSuitesScanResult,
    ProtocolWithOpportunisticTlsEnum,
    RobotScanResultEnum,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)

LISTENERS = ("smtp-starttls", "smtp-implicit", "web-https")

# Only what the assertions read: each cipher-suite command is one handshake per suite.
SCAN_COMMANDS = {
    ScanCommand.SSL_2_0_CIPHER_SUITES,
    ScanCommand.SSL_3_0_CIPHER_SUITES,
    ScanCommand.TLS_1_0_CIPHER_SUITES,
    ScanCommand.TLS_1_1_CIPHER_SUITES,
    ScanCommand.TLS_1_2_CIPHER_SUITES,
    ScanCommand.TLS_1_3_CIPHER_SUITES,
    ScanCommand.TLS_COMPRESSION,
    ScanCommand.SESSION_RENEGOTIATION,
    ScanCommand.HEARTBLEED,
    ScanCommand.ROBOT,
    ScanCommand.OPENSSL_CCS_INJECTION,
}

# The bulk ciphers the policy allows (all AEAD): CBC suites, even with SHA-2, are out.
AEAD_CIPHERS = ("_AES_128_GCM_", "_AES_256_GCM_", "_CHACHA20_POLY1305_")
# Named in a suite, each of these is weak whatever else the suite has.
WEAK_PARTS = ("NULL", "anon", "EXPORT", "RC4", "DES", "MD5", "_CBC_")


def scan_request(port: int, starttls: bool = False) -> ServerScanRequest:
    location = ServerNetworkLocation(hostname="localhost", port=port, ip_address="127.0.0.1")
    network = ServerNetworkConfiguration(
        tls_server_name_indication="localhost",
        tls_opportunistic_encryption=ProtocolWithOpportunisticTlsEnum.SMTP if starttls else None,
    )
    return ServerScanRequest(
        server_location=location, network_configuration=network, scan_commands=SCAN_COMMANDS
    )


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AllScanCommandsAttempts]:
    """Each listener's scan results, by listener (the server is stopped once all are in)."""
    starttls_port, implicit_port, web_port = free_port(), free_port(), free_port()
    gw = Phigate(
        tmp_path_factory.mktemp("tls-scan"),
        listeners=[
            {"name": "submission", "address": f"127.0.0.1:{starttls_port}", "tls": "starttls"},
            {"name": "smtps", "address": f"127.0.0.1:{implicit_port}", "tls": "implicit"},
        ],
        web={"address": f"127.0.0.1:{web_port}", "tls": True},
    )
    requests = {
        "smtp-starttls": scan_request(starttls_port, starttls=True),
        "smtp-implicit": scan_request(implicit_port),
        "web-https": scan_request(web_port),
    }
    with gw:
        scanner = Scanner()
        scanner.queue_scans(list(requests.values()))
        names = {request.uuid: name for name, request in requests.items()}
        results: dict[str, AllScanCommandsAttempts] = {}
        for result in scanner.get_results():
            name = names[result.uuid]
            assert result.scan_status == ServerScanStatusEnum.COMPLETED, (
                name,
                result.connectivity_error_trace,
            )
            assert result.scan_result is not None
            results[name] = result.scan_result
        assert "Traceback" not in gw.log_text()
    return results


def completed(scans: dict[str, AllScanCommandsAttempts], listener: str, command: str) -> Any:
    """The result of one scan command on one listener; a command that errored fails the test."""
    attempt = getattr(scans[listener], command)
    assert attempt.status == ScanCommandAttemptStatusEnum.COMPLETED, (
        listener,
        command,
        attempt.error_reason,
        attempt.error_trace,
    )
    return attempt.result


def accepted_suites(
    scans: dict[str, AllScanCommandsAttempts], listener: str, command: str
) -> list[CipherSuiteAcceptedByServer]:
    result: CipherSuitesScanResult = completed(scans, listener, command)
    return result.accepted_cipher_suites


@pytest.mark.parametrize("listener", LISTENERS)
def test_only_tls_1_2_and_1_3_are_accepted(
    scans: dict[str, AllScanCommandsAttempts], listener: str
) -> None:
    for old in (
        "ssl_2_0_cipher_suites",
        "ssl_3_0_cipher_suites",
        "tls_1_0_cipher_suites",
        "tls_1_1_cipher_suites",
    ):
        suites = accepted_suites(scans, listener, old)
        assert suites == [], (old, [s.cipher_suite.name for s in suites])
    assert accepted_suites(scans, listener, "tls_1_2_cipher_suites")
    assert accepted_suites(scans, listener, "tls_1_3_cipher_suites")


@pytest.mark.parametrize("listener", LISTENERS)
def test_only_forward_secret_aead_suites_are_accepted(
    scans: dict[str, AllScanCommandsAttempts], listener: str
) -> None:
    tls_1_2 = accepted_suites(scans, listener, "tls_1_2_cipher_suites")
    tls_1_3 = accepted_suites(scans, listener, "tls_1_3_cipher_suites")
    for accepted in tls_1_2 + tls_1_3:
        suite = accepted.cipher_suite
        assert not suite.is_anonymous, suite.name
        assert not any(part in suite.name for part in WEAK_PARTS), suite.name
        assert any(cipher in suite.name for cipher in AEAD_CIPHERS), suite.name
        assert suite.key_size >= 128, suite.name
    for accepted in tls_1_2:
        # TLS 1.3 suites are forward secret by design; in 1.2 the key exchange must be
        # ephemeral, and the server must really have sent an ephemeral key of fair size.
        name = accepted.cipher_suite.name
        assert name.startswith("TLS_ECDHE_"), name
        assert accepted.ephemeral_key is not None, name
        assert accepted.ephemeral_key.size >= 253, (name, accepted.ephemeral_key)  # X25519: 253


@pytest.mark.parametrize("listener", LISTENERS)
def test_no_compression_and_only_secure_renegotiation(
    scans: dict[str, AllScanCommandsAttempts], listener: str
) -> None:
    assert not completed(scans, listener, "tls_compression").supports_compression
    renegotiation = completed(scans, listener, "session_renegotiation")
    assert renegotiation.supports_secure_renegotiation
    assert not renegotiation.is_vulnerable_to_client_renegotiation_dos
    assert renegotiation.client_renegotiations_success_count == 0


@pytest.mark.parametrize("listener", LISTENERS)
def test_not_vulnerable_to_heartbleed_robot_or_ccs_injection(
    scans: dict[str, AllScanCommandsAttempts], listener: str
) -> None:
    assert not completed(scans, listener, "heartbleed").is_vulnerable_to_heartbleed
    assert not completed(scans, listener, "openssl_ccs_injection").is_vulnerable_to_ccs_injection
    robot = completed(scans, listener, "robot").robot_result
    assert robot in {
        RobotScanResultEnum.NOT_VULNERABLE_RSA_NOT_SUPPORTED,
        RobotScanResultEnum.NOT_VULNERABLE_NO_ORACLE,
    }, robot
