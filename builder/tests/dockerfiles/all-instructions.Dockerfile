# A line for every instruction of the Dockerfile reference, in both forms where there are two.
FROM --platform=linux/amd64 busybox:1.36 AS base
MAINTAINER Jane Doe <jane@example.com>
LABEL org.opencontainers.image.title="demo" legacy-form is deprecated
LABEL "key with space"="value with space" multi=1 line=2
ENV LEGACY value with spaces
ENV MODERN="quoted value" OTHER=plain
ARG FLAG
ARG A=1 B
RUN --mount=type=cache,target=/root/.cache --network=none echo shell form
RUN ["/bin/echo", "exec", "form"]
CMD ["serve", "--port", "8080"]
CMD serve --port 8080
ENTRYPOINT ["/docker-entrypoint.sh"]
ENTRYPOINT exec /docker-entrypoint.sh
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
EXPOSE 80 443/tcp 53/udp 8000-8010
ADD --chown=1000:1000 --chmod=644 https://example.com/file.tar.gz /downloads/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d --keep-git-dir https://github.com/moby/buildkit.git#v0.10.1 /buildkit
ADD ["file with space.txt", "/dest/"]
COPY --from=base --chown=app:app --link /etc/passwd /etc/group /copied/
COPY --parents --exclude=*.tmp ./src/ /app/
VOLUME /var/lib/data /var/log
VOLUME ["/cache"]
USER app:app
WORKDIR /app
WORKDIR relative
ONBUILD COPY . /app/src
ONBUILD RUN make
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK CMD ["/healthcheck", "--quick"]
HEALTHCHECK NONE
from busybox AS Lower-Case_Keyword.Stage
run echo keywords are case-insensitive
