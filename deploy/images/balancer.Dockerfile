# The load balancer (:8111), FROM scratch around its static binary.
# Built by deploy/build-images.sh, which puts the binary in the context.
FROM scratch
COPY load-balancer /bin/load-balancer
EXPOSE 8111
ENTRYPOINT ["/bin/load-balancer"]
CMD ["ch", "--port", "8111"]
