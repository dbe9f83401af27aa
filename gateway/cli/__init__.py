"""The `phigate` command: a thin layer over the parts, `phigate <noun> <verb>`.

One module per noun. A noun's module is imported only when that noun runs (or
`phigate --help` lists it), so `phigate dkim ls` loads neither the SMTP server
nor the web app.
"""

from __future__ import annotations

import importlib
import os

import click

# noun -> (module under gateway.cli, the click command in it)
COMMANDS: dict[str, tuple[str, str]] = {
    "archive": ("archive", "archive_group"),
    "audit": ("audit", "audit_group"),
    "certs": ("certs", "certs_group"),
    "config": ("serve", "config"),
    "consent": ("consent", "consent_group"),
    "db": ("db", "db_group"),
    "dkim": ("dkim", "dkim_group"),
    "hold": ("hold", "hold_group"),
    "init": ("serve", "init"),
    "inspect": ("inspect", "inspect_command"),
    "nodes": ("nodes", "nodes_group"),
    "keys": ("keys", "keys"),
    "policy": ("policy", "policy_group"),
    "portal": ("portal", "portal_group"),
    "principal": ("principal", "principal"),
    "queue": ("queue", "queue_group"),
    "report": ("report", "report_command"),
    "retention": ("retention", "retention_group"),
    "sandbox": ("sandbox", "sandbox_group"),
    "serve": ("serve", "serve"),
    "template": ("template", "template_group"),
    "token": ("token", "token_group"),
    "user": ("user", "user_group"),
    "webhook": ("webhook", "webhook_group"),
}


class NounGroup(click.Group):
    """A group whose commands are imported from their modules on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=NounGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
def main() -> None:
    """phigate: an SMTP relay for healthcare that decides, per recipient, how each
    message may leave, keeps content encrypted at rest and audits every step.

    \b
    Quick start (embedded defaults, nothing leaves the machine):
      phigate serve                 # listens on 127.0.0.1:2525, sandbox delivery
      phigate sandbox ls            # what would have been sent
    Production:
      phigate init /etc/phigate     # commented config, keys, dev certificate
      phigate config check -c /etc/phigate/phigate.yaml
      phigate serve -c /etc/phigate/phigate.yaml
    """
    # The database holds addresses and the data dir keys: nothing phigate
    # creates is for other users.
    os.umask(0o077)
