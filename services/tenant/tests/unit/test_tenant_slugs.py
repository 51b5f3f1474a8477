import pytest
from tenant_service.slugs import FALLBACK_SLUG, MAX_SLUG_LENGTH, SLUG_PATTERN, slugify, unique_slug


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Hotel Azul", "hotel-azul"),
        ("  Hôtel Le Château  ", "hotel-le-chateau"),
        ("Pousada São João & Spa!", "pousada-sao-joao-spa"),
        ("Straße 42 -- Inn", "strasse-42-inn"),
        ("Søndergård Kro", "sondergard-kro"),
        ("東京ホテル", FALLBACK_SLUG),
        ("---", FALLBACK_SLUG),
        ("ÅNGSTRÖM_Lodge", "angstrom-lodge"),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug
    assert SLUG_PATTERN.match(slugify(name))


def test_slugify_caps_length_without_trailing_dash() -> None:
    slug = slugify("a" * 47 + " bcd")
    assert len(slug) <= MAX_SLUG_LENGTH
    assert not slug.endswith("-")
    assert SLUG_PATTERN.match(slug)


def test_unique_slug_appends_the_first_free_number() -> None:
    assert unique_slug("hotel", set()) == "hotel"
    assert unique_slug("hotel", {"hotel"}) == "hotel-2"
    assert unique_slug("hotel", {"hotel", "hotel-2", "hotel-3"}) == "hotel-4"
    assert unique_slug("hotel", {"hotel", "hotel-3"}) == "hotel-2"


def test_unique_slug_stays_within_max_length() -> None:
    base = "x" * MAX_SLUG_LENGTH
    taken = {base} | {f"{'x' * (MAX_SLUG_LENGTH - 2)}-{n}" for n in range(2, 10)}
    slug = unique_slug(base, taken)
    assert slug == f"{'x' * (MAX_SLUG_LENGTH - 3)}-10"
    assert len(slug) <= MAX_SLUG_LENGTH


def test_a_reserved_slug_is_never_free() -> None:
    assert unique_slug("platform", set()) == "platform-2"
    assert unique_slug("admin", {"admin-2"}) == "admin-3"
    assert unique_slug("platforms", set()) == "platforms"
