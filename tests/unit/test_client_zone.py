"""client.id parsing: the client's zone."""

from __future__ import annotations

import pytest

from shoal.cluster.client_zone import client_id_pairs, client_zone


@pytest.mark.parametrize(
    ("client_id", "zone"),
    [
        ("shoal_az=us-east-1a", "us-east-1a"),
        ("shoal_az=us-east-1a,my-app", "us-east-1a"),
        ("my-app,shoal_az=us-east-1a", "us-east-1a"),
        ("app=billing, ws_az=eu-west-1b ", "eu-west-1b"),
        ("warpstream_az=zone-2,warpstream_proxy_target=produce", "zone-2"),
        ("SHOAL_AZ=Zone-1", "Zone-1"),
        ("ws_az=first,shoal_az=second", "first"),
        ("shoal_az=,ws_az=z", "z"),
        ("shoal_az=", None),
        ("my-app", None),
        ("rdkafka", None),
        ("", None),
        (None, None),
        ("az=zone-1", None),
        ("shoal_az", None),
        ("a=b=c,shoal_az=x=y", "x=y"),
    ],
)
def test_client_zone(client_id: str | None, zone: str | None) -> None:
    assert client_zone(client_id) == zone


def test_pairs_keep_first_occurrence_and_skip_plain_names() -> None:
    assert client_id_pairs("my-app,k=1,K=2, other = v ,x") == {"k": "1", "other": "v"}


def test_huge_client_id_is_bounded() -> None:
    assert client_zone("x" * 100_000 + ",shoal_az=z") is None
    assert client_zone("shoal_az=z," + "x" * 100_000) == "z"
