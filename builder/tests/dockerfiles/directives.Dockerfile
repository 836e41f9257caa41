# Syntax = docker/dockerfile:1.7
# check=skip=all
#escape=\
# unknown=directive ends directive scanning; so this line is a comment:
# escape=`
FROM alpine
RUN echo back\
slash
