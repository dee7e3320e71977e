# Thin wrappers: every target calls a script that can also be run directly.
.PHONY: build app test lint lab-up lab-deploy lab-down lab-artifacts bench bench-handwritten bench-filter-timing venv vagrant-test

build app:            ## build app/target/app.jar (selects a JDK 21+ itself)
	scripts/build-app.sh

test:                 ## the full test command (Maven, lint, lab deploy + verification); what CI runs
	scripts/test.sh

lint:                 ## ansible-lint (production profile), playbook syntax check, ShellCheck
	scripts/lint.sh

venv:                 ## Python venv with the pinned Ansible toolchain (outside the repo)
	scripts/venv.sh

lab-artifacts:        ## build Jaeger, the Collector and Prometheus from the Go module proxy (cached)
	ansible/lab/artifacts/build.sh

lab-up:               ## boot node1..node3 as systemd-nspawn containers on a bridge
	ansible/lab/up.sh

lab-deploy:           ## run ansible/site.yml against the lab; ANSIBLE_ARGS passes options through
	ansible/lab/deploy.sh $(ANSIBLE_ARGS)

lab-down:             ## stop the containers, remove namespaces, bridge, mounts, helper daemons
	ansible/lab/down.sh

bench:                ## throughput / latency / memory of the app, traced and untraced
	scripts/bench.sh

bench-handwritten:    ## the benchmark plus a build whose server spans are made by hand (what the Instrumenter costs)
	scripts/bench-handwritten.sh

bench-filter-timing:  ## the time the tracing filter itself takes a request, inside the running service
	scripts/bench-filter-timing.sh

vagrant-test:         ## README's `vagrant up` for real (LXC provider), /chain traced to Jaeger, destroyed
	vagrant/lxc/vagrant-test.sh
