"""Bearer-token authentication for the dev users (authorization is RBAC's: `rbac/`).

Each user has a home namespace: their kubeconfig context defaults to it. Teams are groups, and
each team has a namespace of the same name that the dev cluster creates at start.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.rbac.policy import (
    AGENT_ROLE,
    NAMESPACE,
    OPERATOR_ROLE,
    service_account_user,
)


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""
    namespace: str = "default"  # the kubeconfig context's namespace

    def user_info(self) -> dict[str, object]:
        """As `userInfo` in an AdmissionReview."""
        return {"username": self.name, "uid": self.uid or self.name, "groups": list(self.groups)}


# Controllers inside the dev cluster (scheduler, StatefulSet controller, GC) act as this user.
SYSTEM = User("system:kube-controller-manager", ("system:authenticated",))

# The teams of the playground: a group each, and a namespace of the same name.
TEAMS: tuple[str, ...] = ("team-ml", "team-vision")

DEFAULT_USERS: tuple[User, ...] = (
    User("admin", ("system:masters", "system:authenticated")),  # cluster-admin
    User("alice", ("team-ml", "system:authenticated"), namespace="team-ml"),
    User("carol", ("team-ml", "system:authenticated"), namespace="team-ml"),
    User("bob", ("team-vision", "system:authenticated"), namespace="team-vision"),
)

# The operator's and agent's service accounts, as the chart installs them (release and namespace
# `sandboxer`); the playground's operator (in-process or its own process) and agents
# authenticate as them and get the chart's roles (rbac/policy.py).
OPERATOR_USER = service_account_user(OPERATOR_ROLE)
AGENT_USER = service_account_user(AGENT_ROLE)
SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}")
OPERATOR_GROUPS = SERVICE_ACCOUNT_GROUPS


@dataclass
class Users:
    """Users by bearer token; tokens are random per cluster and only written to kubeconfigs."""

    by_token: dict[str, User] = field(default_factory=dict)

    @classmethod
    def defaults(cls) -> Users:
        users = cls()
        for user in DEFAULT_USERS:
            users.add(user)
        return users

    def add(self, user: User, token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(24)
        self.by_token[token] = user
        return token

    def token(self, name: str) -> str:
        for token, user in self.by_token.items():
            if user.name == name:
                return token
        known = ", ".join(u.name for u in self.by_token.values())
        raise KeyError(f"no dev user {name!r}; known users: {known}")

    def names(self) -> list[str]:
        return [u.name for u in self.by_token.values()]

    def get(self, name: str) -> User:
        return next(u for u in self.by_token.values() if u.name == name)

    def authenticate(self, header: str | None) -> User:
        if header and header.lower().startswith("bearer "):
            user = self.by_token.get(header[7:].strip())
            if user is not None:
                return user
        raise ApiError(401, "Unauthorized", "Unauthorized")
