# The replayer and simulator (`simulator replay|load|des|experiment`),
# FROM scratch around its static binary, with the checked-in scenarios.
# Built by deploy/build-images.sh, which puts both in the context.
FROM scratch
COPY simulator /bin/simulator
COPY scenarios /scenarios
WORKDIR /out
ENTRYPOINT ["/bin/simulator"]
CMD ["--help"]
