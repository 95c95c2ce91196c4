# A Maildir file that does not end in a newline gets CR LF before the
# terminating dot, not counted in its size, as Dovecot does (pop3d(8)
# MAILDIR); message 2 ("no final newline") is 2 octets smaller than in an mbox.
s/(90 octets)/(88 octets)/
s/^2 40$/2 38/
s/^+OK 40 octets$/+OK 38 octets/
