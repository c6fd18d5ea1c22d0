"""Onboard a team with the SDK: a team, a project, a member, and a token limited to it.

Run it against a running platform (`make run`) as a platform admin:

    .venv/bin/python examples/identity/onboard_team.py --team compliance --project aml --user carol

It is safe to run again: what already exists is left as it is.
"""

from __future__ import annotations

import argparse
import contextlib

from kosmos.platform import Conflict, KosmosClient


def ensure(client: KosmosClient, path: str, body: dict) -> None:
    """Create ``body`` at ``path`` unless it already exists."""
    with contextlib.suppress(Conflict):
        client.post(path, body)


def onboard(client: KosmosClient, team: str, project: str, user: str, role: str) -> str:
    """Set up the team, project and member; return a new token limited to the project."""
    ensure(client, "/teams", {"name": team, "description": f"The {team} team."})
    ensure(client, "/projects", {"name": project, "team": team})
    ensure(client, "/users", {"name": user})
    client.put(f"/projects/{project}/members/{user}", {"role": role})
    name = f"{project}-{len(client.get('/tokens', user=user)) + 1}"
    token = client.post("/tokens", {"name": name, "user": user, "project": project, "role": role})
    return token["token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--team", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--role", default="developer")
    args = parser.parse_args()
    with KosmosClient() as client:
        token = onboard(client, args.team, args.project, args.user, args.role)
        members = client.get(f"/projects/{args.project}/members")
    print(f"members of {args.project}: " + ", ".join(f"{m['user']} ({m['role']})" for m in members))
    print(f"token for {args.user}, limited to {args.project} (shown once):\n  {token}")


if __name__ == "__main__":
    main()
