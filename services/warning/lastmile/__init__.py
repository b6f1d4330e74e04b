"""The last mile of a warning (到村、到户、到信息员): villages' information officers, link tokens,
escalation of unacknowledged villages, enterprises in the fan-out, and the reach of a warning."""
