from __future__ import annotations

import factory
from werkzeug.security import generate_password_hash

from helpdesk.auth.models import Agent, ApiKey
from helpdesk.auth.services import create_api_key
from tests.factories.base import ModelFactory

# Hashing with the default (scrypt) costs ~50 ms; tests use a cheap method for speed.
FAST_HASH = "pbkdf2:sha256:1000"


class AgentFactory(ModelFactory):
    class Meta:
        model = Agent

    email = factory.Sequence(lambda n: f"agent{n}@helpdesk.test")
    name = factory.Faker("name")
    role = "agent"
    active = True

    class Params:
        password = "correct horse battery"
        lead = factory.Trait(role="lead")
        admin = factory.Trait(role="admin")

    password_hash = factory.LazyAttribute(
        lambda o: generate_password_hash(o.password, method=FAST_HASH)
    )


def make_api_key(*scopes: str, name: str = "test key") -> tuple[ApiKey, str]:
    """A real key through the service (hashed at rest); returns (key, bearer token)."""
    return create_api_key(name, list(scopes))
