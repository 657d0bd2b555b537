# The application image repository. bgcloud resolves a tag to its digest here and the
# instances pull by digest, so a moved tag never changes what runs.

resource "aws_ecr_repository" "api" {
  # checkov:skip=CKV_AWS_51:tags may move (latest, main); bgcloud resolves a tag to its digest and deploys by digest
  # checkov:skip=CKV_AWS_136:encrypted at rest with AES256 (AWS-owned keys); a customer KMS key adds cost and no access control here
  name                 = "${var.app}-api"
  image_tag_mutability = "MUTABLE"
  force_delete         = var.force_destroy

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }

  tags = local.tags
}

# Keeps the newest var.ecr_keep_images images. Instances that already pulled an image keep it,
# so a rollback (a listener change) never needs ECR; a replaced instance does, so keep enough
# images to cover the previous colour.
resource "aws_ecr_lifecycle_policy" "api" {
  repository = aws_ecr_repository.api.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the last ${var.ecr_keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = {
          type = "expire"
        }
      }
    ]
  })
}
