"""kernels/masking.py: credentials out of text (an endpoint's answer, a parameter's text)."""

from __future__ import annotations

from nbscale.kernels.masking import HIDDEN, holds_credential, masked


def test_what_looks_like_a_credential_is_masked_and_the_rest_kept():
    text = ("401 Unauthorized: Bearer abc.def token=T0k3n Server=db;Pwd=S3cret; "
            "see https://u:pw@host/x; lang=en")
    out = masked(text, sent=["abc.def"])
    assert "abc.def" not in out and "T0k3n" not in out and "S3cret" not in out and "u:pw" not in out
    assert out.startswith("401 Unauthorized: Bearer " + HIDDEN) and out.endswith("lang=en")


def test_holds_credential_tells_connection_strings_from_plain_text():
    assert holds_credential("jdbc:postgresql://db/x?user=u&password=pw123")
    assert holds_credential("Server=db;Uid=u;Pwd=pw123")
    assert not holds_credential("a run with the password policy of May")
    assert not holds_credential("learning_rate=0.1")
