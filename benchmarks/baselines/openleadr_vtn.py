"""OpenLEADR-python's VTN (OpenADR 2.0b, aiohttp), served over HTTPS for benchmarks/poll.py.

Runs with the interpreter of a separate virtual environment that has ``openleadr==0.5.36``
installed (poll.py makes one under the cache directory); it never imports this project.
The VTN has no events, so every ``oadrPoll`` is answered with an idle ``oadrResponse``.
Messages are unsigned and the TLS listener asks for no client certificate (the load
generator has none); without a ``ven_lookup`` OpenLEADR does no per-VEN lookup, so this is
its lightest poll.

Usage: python openleadr_vtn.py HOST PORT CERT KEY TEMPLATE_OUT
Writes an oadrPoll request whose venID is ``VENIDPLACEHOLDER`` to TEMPLATE_OUT, then serves.
"""

import asyncio
import logging
import ssl
import sys
from pathlib import Path

from openleadr import OpenADRServer
from openleadr.messaging import create_message

host, port, cert, key, template_out = sys.argv[1:6]
logging.getLogger("openleadr").setLevel(logging.CRITICAL)
Path(template_out).write_text(create_message("oadrPoll", ven_id="VENIDPLACEHOLDER"))

server = OpenADRServer(vtn_id="bench-vtn", http_host=host, http_port=int(port),
                       show_fingerprint=False)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.minimum_version = ssl.TLSVersion.TLSv1_2
context.load_cert_chain(cert, key)
server.ssl_context = context

loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
loop.run_until_complete(server.run())
loop.run_forever()
