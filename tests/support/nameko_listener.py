"""A plain nameko service (run with `nameko run`) that records the events it receives."""

import json
import os

from nameko.events import event_handler


class Listener:
    """Subscribes the nameko way to an event our platform publishes."""

    name = "nameko_listener"

    @event_handler("echo", "echo_recorded")
    def on_echo(self, payload):
        """Append the received body to the file named by NAMEKO_OUT."""
        with open(os.environ["NAMEKO_OUT"], "a", encoding="utf-8") as handle:
            handle.write(json.dumps(payload) + "\n")
