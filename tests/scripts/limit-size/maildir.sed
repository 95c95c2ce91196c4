# A Maildir is scanned only up to the limit (its total is not known when the
# scan stops), so the answer gives the limit alone.
s/(1229 octets, the limit is 1024)$/(the limit is 1024 octets)/
