# web_client.py -- an HTTP client over a unix socket for test_web.sh: waits for a web server
# to answer, sends one request, or keeps a server busy, always within a deadline.
#
# Usage: python3 web_client.py wait SOCKET SECONDS
#          GET /pid until it answers 200 (retrying every 20 ms); prints the body. Exit 1 at
#          the deadline.
#        python3 web_client.py get SOCKET PATH [SECONDS]
#          one GET (a connect refused or reset is retried until SECONDS, default 10); prints
#          the body; exit 1 unless the status is 200.
#        python3 web_client.py load SOCKET CLIENTS SECONDS STOPFILE [PATH]
#          CLIENTS threads each GET PATH (default /slow) back to back until STOPFILE exists or
#          SECONDS pass. Prints "served PID COUNT" for every PID that answered (the body's
#          last word), then "errors N". Exit 1 if no request succeeded.
# Python 3.

import http.client
import os
import socket
import sys
import threading
import time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(path_sock, path, timeout):
    conn = UnixConnection(path_sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("ascii", "replace")
    finally:
        conn.close()


def retry(path_sock, path, seconds):
    deadline = time.monotonic() + seconds
    last = "no attempt"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            sys.stderr.write("web_client: %s %s: no answer within %gs (last: %s)\n"
                             % (path_sock, path, seconds, last))
            return None
        try:
            status, body = request(path_sock, path, min(remaining, 5.0))
            if status == 200:
                return body
            last = "status %d" % status
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))


def load(path_sock, clients, seconds, stopfile, path):
    deadline = time.monotonic() + seconds
    served = {}
    errors = [0]
    lock = threading.Lock()

    def run():
        while time.monotonic() < deadline and not os.path.exists(stopfile):
            try:
                status, body = request(path_sock, path, 5.0)
            except (OSError, http.client.HTTPException):
                status, body = 0, ""
            with lock:
                words = body.split()
                if status == 200 and words:
                    served[words[-1]] = served.get(words[-1], 0) + 1
                else:
                    errors[0] += 1

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pid in sorted(served):
        print("served %s %d" % (pid, served[pid]))
    print("errors %d" % errors[0])
    return 0 if served else 1


def main(argv):
    if len(argv) >= 4 and argv[1] == "wait":
        body = retry(argv[2], "/pid", float(argv[3]))
    elif len(argv) in (4, 5) and argv[1] == "get":
        body = retry(argv[2], argv[3], float(argv[4]) if len(argv) == 5 else 10.0)
    elif len(argv) in (6, 7) and argv[1] == "load":
        return load(argv[2], int(argv[3]), float(argv[4]), argv[5],
                    argv[6] if len(argv) == 7 else "/slow")
    else:
        sys.stderr.write("usage: see the head of web_client.py\n")
        return 64
    if body is None:
        return 1
    sys.stdout.write(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
