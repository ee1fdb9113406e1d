# Shared by the CGI scripts of every role.

# reply STATUS TYPE: starts a response. busybox httpd passes output that
# begins with "HTTP/" through unchanged, so a script can choose its status.
reply() {
  printf 'HTTP/1.0 %s\r\nContent-Type: %s\r\n\r\n' "$1" "$2"
}

# fail STATUS MESSAGE: a plain-text error response, then exit.
fail() {
  reply "$1" text/plain
  echo "$2"
  exit 0
}

# param NAME: the value of NAME in the query string, restricted to a safe
# file name (letters, digits, dot, dash, underscore).
param() {
  echo "$QUERY_STRING" | tr '&' '\n' | sed -n "s/^$1=\([A-Za-z0-9._-]*\)\$/\1/p" | head -n 1
}

# body FILE: the request body (CONTENT_LENGTH bytes of stdin) into FILE.
body() {
  head -c "${CONTENT_LENGTH:-0}" > "$1"
}
