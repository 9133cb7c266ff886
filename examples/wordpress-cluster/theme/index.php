<?php
/* One template for every view: the loop, the approved comments and the comment form of a single post,
 * and a footer saying which front end rendered the page from which Marmot node (DB_HOST). */
?><!DOCTYPE html>
<html <?php language_attributes(); ?>><head>
<meta charset="<?php bloginfo('charset'); ?>">
<link rel="stylesheet" href="<?php echo esc_url(get_stylesheet_uri()); ?>">
<?php wp_head(); ?>
</head>
<body <?php body_class(); ?>>
<h1 class="site-title"><a href="<?php echo esc_url(home_url('/')); ?>"><?php bloginfo('name'); ?></a></h1>
<?php if (have_posts()) : while (have_posts()) : the_post(); ?>
<article class="post" id="post-<?php the_ID(); ?>">
  <h2 class="entry-title"><a href="<?php the_permalink(); ?>"><?php the_title(); ?></a></h2>
  <div class="entry-content"><?php the_content(); ?></div>
  <?php if (is_singular()) : ?>
    <?php foreach (get_comments(array('post_id' => get_the_ID(), 'status' => 'approve', 'order' => 'ASC')) as $c) : ?>
    <div class="comment" id="comment-<?php echo (int) $c->comment_ID; ?>">
      <span class="comment-author"><?php echo esc_html($c->comment_author); ?></span>:
      <span class="comment-text"><?php echo esc_html($c->comment_content); ?></span>
    </div>
    <?php endforeach; ?>
    <?php comment_form(); ?>
  <?php endif; ?>
</article>
<?php endwhile; else : ?>
<p class="nothing">Nothing found</p>
<?php endif; ?>
<nav class="paging"><?php next_posts_link('Older posts'); ?> <?php previous_posts_link('Newer posts'); ?></nav>
<p class="served-by">Served by <?php echo esc_html(home_url()); ?> from the Marmot node at <?php echo esc_html(DB_HOST); ?></p>
<?php wp_footer(); ?>
</body></html>
