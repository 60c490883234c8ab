# A real sd_notify endpoint for tests: binds an AF_UNIX datagram socket (a path, or an abstract
# name when it starts with '@') and prints each message on one line, fields joined by '|'.
import socket
import sys

name = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind("\0" + name[1:] if name.startswith("@") else name)
print("LISTENING", flush=True)
while True:
    data, _ = sock.recvfrom(65536)
    print("|".join(data.decode().strip().split("\n")), flush=True)
