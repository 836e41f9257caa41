FROM alpine
RUN echo crlf \
    continued
ENV X=1
