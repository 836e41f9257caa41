FROM debian:bookworm

# Comments inside a continuation are dropped without ending it.
RUN apt-get update \
# install the tools
    && apt-get install -y \
        curl \

        git \
    # indented comment too
    && rm -rf /var/lib/apt/lists/*
RUN echo good\
bye\
frog
ENV A=1 \
    B=2
LABEL description="a \
long one"
RUN echo 'a # b' # not a comment: only a leading # starts one
CMD echo done \
