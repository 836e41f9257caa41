ARG BASE=alpine
ARG TAG=3.19
ARG UNUSED_IN_STAGE=meta
FROM ${BASE}:${TAG} AS build
# Meta args are not visible in the stage until re-declared.
RUN echo "TAG is empty here: $TAG"
ARG TAG
ARG VERSION=1.0
ARG USERNAME
USER ${USERNAME:-nobody}
ENV VERSION=v${VERSION} PREFIX=$VERSION
LABEL version=$VERSION "built by"="${USERNAME:-someone}"
ARG HTTP_PROXY
RUN echo building $VERSION

FROM build AS test
# Inherits build's ARG and ENV.
WORKDIR /src/$VERSION
RUN make test

FROM scratch
ARG TAG=override-me
COPY --from=build /out/app-${TAG} /app
ENV PATH=/bin
ENV PATH=$PATH:/usr/bin A=$PATH
ENV PORTS="80 443/tcp"
EXPOSE $PORTS ${EXTRA_PORT:-8080}
VOLUME ["/data", "$TAG"]
STOPSIGNAL SIG${SIGNAL:-TERM}
