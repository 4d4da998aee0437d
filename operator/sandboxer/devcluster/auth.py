"""Bearer-token authentication for the dev users. No authorization (RBAC) is evaluated."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from sandboxer.devcluster.errors import ApiError


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    uid: str = ""

    def user_info(self) -> dict[str, object]:
        """As `userInfo` in an AdmissionReview."""
        return {"username": self.name, "uid": self.uid or self.name, "groups": list(self.groups)}


# Controllers inside the dev cluster (scheduler, StatefulSet controller, GC) act as this user.
SYSTEM = User("system:kube-controller-manager", ("system:authenticated",))

DEFAULT_USERS: tuple[User, ...] = (
    User("admin", ("system:masters", "system:authenticated")),
    User("alice", ("team-ml", "system:authenticated")),
    User("bob", ("team-vision", "system:authenticated")),
)


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

    def authenticate(self, header: str | None) -> User:
        if header and header.lower().startswith("bearer "):
            user = self.by_token.get(header[7:].strip())
            if user is not None:
                return user
        raise ApiError(401, "Unauthorized", "Unauthorized")
