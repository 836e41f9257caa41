FROM scratch
CMD ["a", "b"]
CMD ['single', 'quotes', 'are', 'not', 'json']
CMD ["unterminated
CMD ["trailing"] garbage
CMD ["\u0041\t\"x\""]
CMD []
RUN [ "spaced" , "out" ]
SHELL ["cmd", "/S", "/C"]
ENTRYPOINT ["C:\\path\\app.exe"]
VOLUME /plain /list
