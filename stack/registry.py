"""The worker image: an ECR repository and a build of runtime/worker, or a given image URI."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from stack.settings import REPO_ROOT, StackSettings


def ecr_lifecycle_policy(keep_images: int) -> str:
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "drop untagged layers after a week",
                    "selection": {
                        "tagStatus": "untagged",
                        "countType": "sinceImagePushed",
                        "countUnit": "days",
                        "countNumber": 7,
                    },
                    "action": {"type": "expire"},
                },
                {
                    "rulePriority": 2,
                    "description": f"keep the newest {keep_images} images",
                    "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_images},
                    "action": {"type": "expire"},
                },
            ]
        }
    )


class WorkerImageArgs:
    def __init__(self, *, settings: StackSettings, force_delete: bool, tags: dict[str, str]) -> None:
        self.settings = settings
        self.force_delete = force_delete
        self.tags = tags


class WorkerImage(pulumi.ComponentResource):
    """``image_ref``: what the job definitions run (a digest-pinned ECR ref when built here)."""

    image_ref: pulumi.Output[str]
    repository_url: pulumi.Output[str] | None

    def __init__(self, name: str, args: WorkerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vsr:registry:WorkerImage", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        if s.worker_image.uri:
            self.image_ref = pulumi.Output.from_input(s.worker_image.uri)
            self.repository_url = None
            self.register_outputs({"image_ref": self.image_ref})
            return
        repo = aws.ecr.Repository(
            name,
            aws.ecr.RepositoryArgs(
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                # Tags are moved by rebuilds; job definitions pin the digest instead.
                image_tag_mutability="MUTABLE",
                encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")],
                force_delete=args.force_delete,
                tags=args.tags,
            ),
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            aws.ecr.LifecyclePolicyArgs(repository=repo.name, policy=ecr_lifecycle_policy(s.worker_image.keep_images)),
            opts=child,
        )
        token = aws.ecr.get_authorization_token_output(registry_id=repo.registry_id)
        context = s.worker_image.context if s.worker_image.context.is_absolute() else REPO_ROOT / s.worker_image.context
        image = docker_build.Image(
            name,
            docker_build.ImageArgs(
                context=docker_build.BuildContextArgs(location=str(context)),
                dockerfile=docker_build.DockerfileArgs(location=str(REPO_ROOT / s.dockerfile)),
                platforms=[docker_build.Platform.LINUX_AMD64],
                build_args={"ACCELERATOR": s.accelerator.value},
                push=True,
                tags=[repo.repository_url.apply(lambda url: f"{url}:{s.accelerator.value}")],
                registries=[
                    docker_build.RegistryArgs(
                        address=repo.repository_url, username=token.user_name, password=token.password
                    )
                ],
            ),
            opts=child,
        )
        self.image_ref = image.ref
        self.repository_url = repo.repository_url
        self.register_outputs({"image_ref": image.ref, "repository_url": repo.repository_url})
