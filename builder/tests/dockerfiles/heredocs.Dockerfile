FROM alpine:3.19
ARG NAME=world
RUN <<EOF
echo "hello $NAME"
EOF
RUN <<-'SCRIPT' bash
	echo 'tabs stripped, $NAME kept'
	SCRIPT
RUN 3<<IN cat /dev/fd/3 && cat <<OUT
from fd 3
IN
second
OUT
COPY <<FILE1 <<"FILE2" /etc/
greeting=${NAME} "quotes stay"
FILE1
literal=${NAME}
FILE2
COPY --chmod=0755 <<run.sh /usr/local/bin/run.sh
#!/bin/sh
exec "$@"
run.sh
RUN ["echo", "<<NOT_A_HEREDOC"]
RUN echo "<<ALSO_NOT"
ONBUILD RUN <<EOF
echo downstream
EOF
