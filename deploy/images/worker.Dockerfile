# A worker (:8222), FROM scratch around its static binary and the static
# hf-fn that runs every sample function (the process runtime copies it
# into its work area; the Docker runtime puts it in each function image).
# Built by deploy/build-images.sh, which puts both binaries in the context.
FROM scratch
COPY worker-front /bin/worker-front
COPY hf-fn /bin/hf-fn
# The worker's locked work area lives under TMPDIR; scratch has no /tmp.
WORKDIR /tmp
ENV TMPDIR=/tmp HF_FN_STATIC=/bin/hf-fn
EXPOSE 8222
ENTRYPOINT ["/bin/worker-front", "start"]
CMD ["--port", "8222"]
