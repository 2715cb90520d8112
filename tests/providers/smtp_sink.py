"""A real SMTP server (aiosmtpd) for tests/api/providers.rs: it listens on 127.0.0.1 at
a port the system picks, prints "ready PORT" once it takes connections, and prints each message it
accepts as one JSON line, read back with Python's own email parser (policy.default,
which decodes RFC 2047 words and transfer encodings). A recipient whose local part is
`refused` is answered 550 (permanent), `later` 451 (transient), as a real server might.

    python smtp_sink.py
"""

import asyncio
import email
import hashlib
import json
import sys
from email import policy

from aiosmtpd.smtp import SMTP


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "refused":
            return "550 5.1.1 mailbox unavailable"
        if local == "later":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        head = raw.split(b"\r\n\r\n", 1)[0]
        message = email.message_from_bytes(raw, policy=policy.default)
        body = message.get_body(preferencelist=("plain",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "charset": body.get_content_charset() if body else None,
            "transfer_encoding": str(body["Content-Transfer-Encoding"]) if body else None,
            "text": body.get_content() if body else None,
            "attachments": [
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "sha256": hashlib.sha256(part.get_payload(decode=True)).hexdigest(),
                    "size": len(part.get_payload(decode=True)),
                }
                for part in message.iter_attachments()
            ],
            "defects": [type(d).__name__ for d in message.defects],
            # What went over the wire, before decoding: non-ASCII must be encoded.
            "head": head.decode("latin-1"),
            "head_is_ascii": all(b < 128 for b in head),
        }
        print(json.dumps(record), flush=True)
        return "250 Message accepted for delivery"


async def serve():
    loop = asyncio.get_running_loop()
    # Port 0: the system picks a free port, said on the "ready" line, so no other
    # process can take it between a test choosing it and this server binding it.
    server = await loop.create_server(lambda: SMTP(Sink()), host="127.0.0.1", port=0)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    try:
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        server.close()


if __name__ == "__main__":
    asyncio.run(serve())
