"""The ``dialog360`` command line's grammar: commands, options and help texts.

Every parser is a :class:`Parser`, whose usage errors never repeat a value from the command
line: a value may be the API key, given to the wrong option or after a misspelt one.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from .._version import __version__
from ._broadcast import broadcast
from ._commands import PROG, block, blocked, demo, report, run, send
from ._distributed import add_campaign_commands, add_distributed_options
from ._report import delivery_report, unknown
from ._send import HEADER_KINDS
from ._suppressions import add_suppression_commands
from ._webhook import serve

__all__ = ["GLOBAL_DEFAULTS", "Parser", "build_parser", "option_names", "without_values"]

_ARGUMENT = re.compile(r"argument (?P<name>[^:]+): (?P<detail>.*)", re.DOTALL)
_TYPED = re.compile(r"invalid [\w.]+ value")
_VALUELESS = re.compile(
    r"expected (one|at most one|at least one|\d+) arguments?|not allowed with argument \S+"
)
_OPTION = re.compile(r"--?[A-Za-z][A-Za-z0-9-]*")


def option_names(tokens: Iterable[str]) -> str:
    """The option names among command-line tokens (``--name=value`` shows ``--name``)."""
    names = [t.split("=", 1)[0] for t in tokens]
    return " ".join(n for n in names if _OPTION.fullmatch(n)) or "extra values"


def without_values(message: str) -> str:
    """An argparse error message with every value from the command line left out."""
    argument = _ARGUMENT.fullmatch(message)
    if argument is not None:
        name, detail = argument["name"], argument["detail"]
        if detail.startswith("invalid choice"):
            _, found, choices = detail.rpartition(" (choose from ")
            listed = f" (choose from {choices}" if found else ""
            return f"argument {name}: invalid choice{listed}"
        typed = _TYPED.match(detail)
        if typed is not None:
            return f"argument {name}: {typed[0]}"
        if detail.startswith("ignored explicit argument"):
            return f"argument {name}: takes no value"
        if _VALUELESS.fullmatch(detail):
            return message
        return f"argument {name}: invalid value"  # e.g. an ArgumentTypeError's own text
    head, _, rest = message.partition(": ")
    if head == "ambiguous option":
        option, _, matches = rest.rpartition(" could match ")
        return f"ambiguous option: {option_names([option])} could match {matches}"
    if head == "unrecognized arguments":
        return f"unrecognized arguments: {option_names(rest.split())}"
    if message.startswith(("the following arguments are required: ", "one of the arguments ")):
        return message
    return "invalid command line (see --help)"


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors name options, never the values given to them.

    Subparsers are of the parser's own class, so one class covers every command.
    """

    def error(self, message: str) -> NoReturn:
        """Print the usage and the error without values, and exit with status 2."""
        super().error(without_values(message))


_EPILOG = (
    "The options above may also follow the command. Set the API key in the D360_API_KEY "
    "environment variable rather than with --api-key: command lines are visible to other users "
    "of the machine. 'dialog360 demo' needs no key and no network. Exit status: 0 ok (for a "
    "broadcast: every message sent, or skipped as sent before), 1 an API or file error, or a "
    "message failed or unknown, 2 bad usage or input (nothing sent), 3 a broadcast channel was "
    "halted, 130 interrupted."
)

_BROADCAST_HELP = """\
INPUT is a .jsonl file (one message per line in the wire shape, e.g.
  {"to": "+4915112345678", "type": "location", "location": {"latitude": 52.5, "longitude": 13.4}}
  {"to": "+4915112345678", "type": "contacts", "contacts": [{"name": {...}, "phones": [...]}]}
  {"to": "+4915112345678", "type": "text", "text": {"body": "Hello", "preview_url": false}}
  {"to": "+4915112345678", "type": "template", "template": {"name": "order_update",
   "language": {"code": "en_US"}, "components": [{"type": "body", "parameters": [...]}]}}
with an optional "key"), a .csv file with a header line, either
  to,latitude,longitude[,name,address]            -> location messages
  to,formatted_name,first_name,last_name,phone    -> one-contact messages
(plus an optional key column), or - for JSONL on standard input (--format csv for CSV).

With --template NAME --language CODE [--namespace NS], every row of a CSV input is that
template, its variables taken from the row:
  to,body.1,...,body.N[,header.text|header.image|header.video|header.document]
body.1 ... body.N fill the body's {{1}} ... {{N}} (every one from 1 to N, as text), the
one header.* column the header's variable (a text, or an https link to the media); every
cell must be filled. E.g. with --template order_update --language en_US:
  to,body.1,body.2
  +4915112345678,Ada,A-1001

The whole input is validated first: a bad line stops the command with "INPUT:LINE: reason"
and exit code 2 before anything is sent, and so does an input without messages. Keys
(default: recipient plus a hash of the content) must be unique: every line that repeats an
earlier line's key is reported as "INPUT:LINE: duplicate of line N". Then the input is
streamed (memory stays flat).

Writes one JSON line per message to --output: key, to, status (sent, failed, unknown,
skipped, cancelled), message_id, error, code, attempts. "unknown" means the message may or
may not have been delivered; it is never resent, not even with --resume. The summary goes to
stderr. With --distributed the lines are read back from Redis once the campaign has finished
(attempts is null: it is not recorded there); --no-wait writes none and refuses --output.

With --journal, every send is recorded; after a crash or Ctrl-C, run the same command with
--resume to send only what was not sent yet. --resume needs the journal to exist, and appends
to --output, which then holds every outcome (and message id) of both runs. INPUT, --output and
--journal must be three different files.

Exit status: 0 every message sent (or skipped as sent before), 1 some failed or unknown,
2 bad usage or input (nothing sent), 3 a channel was halted (its remaining messages are
cancelled), 130 interrupted.
"""


GLOBAL_DEFAULTS: dict[str, Any] = {
    "api_key": None,
    "base_url": None,
    "on_premise": False,
    "timeout": 30.0,
}


def _global_options(parser: argparse.ArgumentParser, *, shown: bool) -> None:
    # Accepted before and after the command, documented once. SUPPRESS (main fills in the
    # defaults) keeps the command's copy of an option from resetting a value given before it.
    default = argparse.SUPPRESS

    def text(words: str) -> str:
        return words if shown else argparse.SUPPRESS

    parser.add_argument(
        "--api-key",
        default=default,
        metavar="KEY",
        help=text("the channel's D360-API-KEY (default: $D360_API_KEY)"),
    )
    parser.add_argument(
        "--base-url",
        default=default,
        metavar="URL",
        help=text("API root (default: $D360_BASE_URL, else the 360dialog URL of the API)"),
    )
    parser.add_argument(
        "--on-premise",
        action="store_true",
        default=default,
        help=text("use the On-Premise API (OnPremiseClient)"),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default,
        metavar="S",
        help=text("seconds per attempt (30)"),
    )


_DB_HELP = "a broadcast store (the --journal of a broadcast); must exist"


def _delivery_commands(command: Callable[..., Any], commands: Any, common: Parser) -> None:
    sub = command("report", delivery_report, "print a broadcast's delivery report")
    sub.add_argument("db", metavar="DB", help=_DB_HELP)
    sub.add_argument("--campaign", help="the campaign (default: the store's last one)")
    sub.add_argument("--html", metavar="FILE", help="also write the report as one HTML page")
    sub.add_argument(
        "--horizon",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a send without any status this long after is unconfirmed (3600)",
    )

    sub = command("unknown", unknown, "list a broadcast's messages in doubt, as JSONL")
    sub.add_argument("db", metavar="DB", help=_DB_HELP)
    sub.add_argument("--campaign", help="the campaign (default: the store's last one)")
    sub.add_argument("--output", metavar="FILE", help="write the JSONL here (default: stdout)")

    text = "receive 360dialog webhooks"
    webhook = commands.add_parser("webhook", help=text, description=text)
    actions = webhook.add_subparsers(dest="action", metavar="ACTION", required=True)
    text = "receive status webhooks into a broadcast store until SIGINT or SIGTERM"
    sub = actions.add_parser(
        "serve", help=text, description=f"{text}; prints its URL.", parents=[common]
    )
    sub.set_defaults(handler=serve)
    sub.add_argument(
        "--db", required=True, metavar="DB", help="the broadcast store (created if missing)"
    )
    sub.add_argument("--port", required=True, type=int, help="TCP port, 0 = any free one")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    sub.add_argument("--path", default="/webhook", help="the webhook's URL path (/webhook)")
    sub.add_argument(
        "--auth-header",
        action="append",
        metavar="NAME:VALUE",
        help="a header every POST must carry, as set with the webhook URL; repeatable "
        "(command lines are visible to other users of the machine)",
    )
    sub.add_argument(
        "--signature-secret-env",
        metavar="VAR",
        help="check x-360dialog-signature with the partner secret in this environment variable",
    )


def build_parser() -> Parser:
    """The parser of the whole command line; each command sets its ``handler``."""
    parser = Parser(
        prog=PROG,
        description="Send WhatsApp location, contacts, text and template messages and manage "
        "blocklists through the 360dialog API.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, shown=True)
    common = Parser(add_help=False)
    _global_options(common, shown=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable[[argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, help=text, description=text, parents=[common])
        sub.set_defaults(handler=handler)
        return sub

    sub = command("send-location", run(send), "send a location message; prints its id")
    sub.add_argument("--to", required=True, metavar="NUMBER", help="recipient phone or wa_id")
    sub.add_argument("--lat", required=True, type=float, help="latitude, -90..90")
    sub.add_argument("--lon", required=True, type=float, help="longitude, -180..180")
    sub.add_argument("--name", help="name of the place")
    sub.add_argument("--address", help="address of the place")

    sub = command("send-contacts", run(send), "send contact cards; prints the message id")
    sub.add_argument("--to", required=True, metavar="NUMBER", help="recipient phone or wa_id")
    sub.add_argument(
        "--file",
        required=True,
        metavar="JSON",
        help='one contact or a list, in the wire shape, e.g. {"name": {"formatted_name": '
        '"Ada", "first_name": "Ada"}, "phones": [{"phone": "+441234567"}]}; - = stdin',
    )

    sub = command("send-text", run(send), "send a text message; prints its id")
    sub.add_argument("to", metavar="TO", help="recipient phone or wa_id")
    sub.add_argument("body", metavar="BODY", help="the text, 1 to 4096 characters")
    sub.add_argument(
        "--preview-url", action="store_true", help="show a preview of the first URL in BODY"
    )

    sub = command("send-template", run(send), "send an approved template; prints the message id")
    sub.add_argument("to", metavar="TO", help="recipient phone or wa_id")
    sub.add_argument("name", metavar="NAME", help="the template's name")
    sub.add_argument("--language", required=True, metavar="CODE", help="e.g. en or en_US")
    sub.add_argument(
        "--namespace", metavar="NS", help="the template namespace (On-Premise needs it)"
    )
    sub.add_argument(
        "--param",
        action="append",
        metavar="TEXT",
        help="the next body variable: the first --param fills {{1}}, the second {{2}}, ...",
    )
    header = sub.add_mutually_exclusive_group()
    for kind in HEADER_KINDS:
        metavar, what = (
            ("TEXT", "a text") if kind == "text" else ("URL", f"an https link to the {kind}")
        )
        header.add_argument(
            f"--header-{kind}", metavar=metavar, help=f"the header variable, {what}"
        )

    sub = command("block", run(block), "block users; prints added/failed per wa_id")
    sub.add_argument("users", nargs="+", metavar="USER")
    sub.add_argument("--reason", help="block reason, under 60 characters (On-Premise only)")
    sub = command("unblock", run(block), "unblock users; prints removed/failed per wa_id")
    sub.add_argument("users", nargs="+", metavar="USER")
    command("blocked", run(blocked), "list blocked users, one wa_id per line")

    sub = command("report-user", report, "report a user to WhatsApp (On-Premise only)")
    sub.add_argument("user", metavar="USER")
    sub.add_argument("--reason", help="why, under 60 characters")
    sub.add_argument("--block", action="store_true", help="block the user too")
    sub.add_argument("--message-id", help="the offending message (default: the last 5)")

    sub = commands.add_parser(
        "broadcast",
        help="send every message of a JSONL or CSV file, resumably",
        description="Send every message of INPUT at a bounded concurrency and rate.",
        epilog=_BROADCAST_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    sub.set_defaults(handler=broadcast)
    sub.add_argument("input", metavar="INPUT", help="a .jsonl or .csv file, or - for stdin")
    sub.add_argument("--format", choices=("jsonl", "csv"), help="override the guess by suffix")
    sub.add_argument(
        "--output", metavar="FILE", help="results as JSONL (default: stdout; --resume appends)"
    )
    sub.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    sub.add_argument("--rate", type=float, default=80.0, help="msg/s, 0 = no limit (80)")
    sub.add_argument(
        "--outage-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a channel unreachable this long ends its messages failed, unreachable (60)",
    )
    sub.add_argument(
        "--journal", metavar="FILE", help="record every send in this SQLite file (a BroadcastStore)"
    )
    sub.add_argument(
        "--resume", action="store_true", help="continue the run recorded in --journal (must exist)"
    )
    sub.add_argument(
        "--outside-window",
        choices=("send", "skip"),
        default="send",
        help="skip free-form messages to users who have not written in 24 h, as the "
        "--journal's webhooks show (send)",
    )
    sub.add_argument(
        "--utility",
        action="store_true",
        help="not a marketing campaign: users suppressed for marketing only get it",
    )
    group = sub.add_argument_group("a template for every CSV row (see below)")
    group.add_argument("--template", metavar="NAME", help="the template's name")
    group.add_argument("--language", metavar="CODE", help="its language code, e.g. en_US")
    group.add_argument("--namespace", metavar="NS", help="its namespace (On-Premise needs it)")
    add_distributed_options(sub)
    add_campaign_commands(commands, common)

    _delivery_commands(command, commands, common)
    add_suppression_commands(commands, common)

    sub = command(
        "demo",
        demo,
        "offline broadcast through the bundled fake server (no key, no network)",
    )
    sub.add_argument("--count", type=int, default=5000, help="messages to send (5000)")
    sub.add_argument("--channels", type=int, default=5, help="channels, one key each (5)")
    sub.add_argument("--rate", type=float, default=80.0, help="msg/s per channel, 0 = off (80)")
    sub.add_argument("--concurrency", type=int, default=32, help="requests in flight (32)")
    sub.add_argument(
        "--seed", type=int, help="seed of the random message contents and delivery statuses"
    )
    sub.add_argument(
        "--keep-db",
        metavar="PATH",
        help="keep the broadcast store in this new file (for 'dialog360 report PATH')",
    )

    commands.add_parser(
        "fake-server",
        add_help=False,
        help="run the fake 360dialog server (see: dialog360 fake-server --help)",
    )
    return parser
