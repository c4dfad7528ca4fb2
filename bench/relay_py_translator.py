#!/usr/bin/env python3
"""The baseline for bench/relay.sh: a minimal SonarQube -> Mattermost translator written the way a
blog script would be, with the standard library only. It checks the HMAC, parses the payload,
builds a Mattermost message with the same fields as the relay, and forwards it synchronously to
the incoming webhook before answering. No spool: an event is lost if Mattermost is down or the
process dies.

usage: relay_py_translator.py LISTEN_PORT SECRET_FILE WEBHOOK_URL
"""

import hashlib
import hmac
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
SECRET = open(sys.argv[2], "rb").read().strip()
HOOK = urllib.parse.urlsplit(sys.argv[3])
LIMIT = 1024 * 1024
local = threading.local()


def mattermost():
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = http.client.HTTPConnection(HOOK.hostname, HOOK.port, timeout=10)
        local.conn = conn
    return conn


def render(event):
    project = event["project"]
    gate = event.get("qualityGate") or {}
    failed = [c for c in gate.get("conditions", []) if c.get("status") in ("ERROR", "WARN")]
    branch = event.get("branch") or {}
    link = branch.get("url") or project.get("url")
    status = "failed" if gate.get("status") != "OK" else "passed"
    fields = [{"title": "Project", "value": project.get("name", project["key"]), "short": True}]
    if branch.get("name"):
        fields.append({"title": "Branch", "value": branch["name"], "short": True})
    for c in failed:
        fields.append({
            "title": c.get("metric", "?"),
            "value": "%s (threshold %s)" % (c.get("value", "no value"), c.get("errorThreshold", "?")),
            "short": True,
        })
    return {
        "text": "Quality gate %s: [%s](%s)" % (status, project.get("name", project["key"]), link),
        "attachments": [{
            "fallback": "Quality gate %s: %s" % (status, project["key"]),
            "color": "#D0021B" if status == "failed" else "#2EA44F",
            "title": project.get("name", project["key"]),
            "title_link": link,
            "fields": fields,
        }],
        "props": {"sonar_task_id": event.get("taskId")},
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > LIMIT:
            return self.answer(413, "too large")
        body = self.rfile.read(length)
        given = self.headers.get("X-Sonar-Webhook-HMAC-SHA256", "")
        expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(given, expected):
            return self.answer(401, "bad signature")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self.answer(415, "not json")
        try:
            event = json.loads(body)
            message = json.dumps(render(event))
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.answer(400, "malformed")
        try:
            conn = mattermost()
            conn.request("POST", HOOK.path, message, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            ok = 200 <= response.status < 300
        except (OSError, http.client.HTTPException):
            local.conn = None
            ok = False
        self.answer(200 if ok else 502, "ok" if ok else "mattermost failed")


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print("python translator listening on 127.0.0.1:%d" % PORT, flush=True)
server.serve_forever()
