<?php
/* Minimal classic theme: everything the end-to-end test asserts on is printed as plain HTML. */
?><!DOCTYPE html>
<html><head><title><?php echo esc_html(get_bloginfo('name')); ?></title></head>
<body>
<h1 class="site-title"><?php bloginfo('name'); ?></h1>
<?php if (is_search()) : ?><p class="search-for">Search: <?php echo esc_html(get_search_query()); ?></p><?php endif; ?>
<?php if (is_category()) : ?><p class="archive-for">Category: <?php single_cat_title(); ?></p><?php endif; ?>
<?php if (have_posts()) : while (have_posts()) : the_post(); ?>
<article class="post" id="post-<?php the_ID(); ?>">
  <h2 class="entry-title"><?php the_title(); ?></h2>
  <div class="entry-content"><?php the_content(); ?></div>
  <?php if (is_singular()) :
    foreach (get_comments(array('post_id' => get_the_ID(), 'status' => 'approve')) as $c) : ?>
    <div class="comment" id="comment-<?php echo (int) $c->comment_ID; ?>">
      <span class="comment-author"><?php echo esc_html($c->comment_author); ?></span>:
      <span class="comment-text"><?php echo esc_html($c->comment_content); ?></span>
    </div>
  <?php endforeach; endif; ?>
</article>
<?php endwhile; else : ?>
<p class="nothing">Nothing found</p>
<?php endif; ?>
<nav class="paging"><?php next_posts_link('Older posts'); ?> <?php previous_posts_link('Newer posts'); ?></nav>
<p class="found">Found: <?php global $wp_query; echo (int) $wp_query->found_posts; ?></p>
</body></html>
